import { copyFile, mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyTree, linkOrCopy, stampTree } from '../lib/fsutil.ts';
import { fileDigest, walk } from '../lib/hash.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage, StageContext } from '../lib/runner.ts';
import { makeEfiImage, makeGrubEfi } from '../iso/efi.ts';
import { makeHybridIso, rewriteIso } from '../iso/xorriso.ts';
import { isoExtents, readExtent } from '../iso/layout.ts';
import { addKernelArgs, menuFormat } from '../iso/menus.ts';
import { makeCloop } from '../iso/cloop.ts';
import { UserError } from '../lib/errors.ts';
import { kernelArgs } from './06-site.ts';
import type { BaseInfo } from './01-base.ts';
import type { UnpackInfo } from './02-unpack.ts';

/** Boot loader files taken from the host's Debian packages (isolinux, syslinux-common). */
export const hostBootFiles = {
  isolinux: '/usr/lib/ISOLINUX/isolinux.bin',
  mbr: '/usr/lib/ISOLINUX/isohdpfx.bin',
  ldlinux: '/usr/lib/syslinux/modules/bios/ldlinux.c32',
  grubModules: '/usr/lib/grub/x86_64-efi',
};

export const isoName = 'knoppix-openssi.iso';

/**
 * Layer mode on a user's ISO: the OpenSSI and site layers go in as the next images in the base's
 * own format (KNOPPIX/KNOPPIXn; a cloop base gets cloop-wrapped layers), every boot entry gets
 * our kernel arguments, and xorriso rewrites the ISO reusing the base's data and boot records.
 */
async function remaster(ctx: StageContext<BuildOptions>, base: NonNullable<BaseInfo['remaster']>): Promise<void> {
  if (base.layout !== 'knoppix') throw new UserError(`--base ${base.iso}: remastering the ${base.layout} layout is not built yet (KNOPPIX layout is)`);
  const work = join(ctx.out, 'work');
  await mkdir(work, { recursive: true });
  const files: { source: string; path: string }[] = [];
  const top = Number(/(\d*)$/.exec(base.images[base.images.length - 1].path)![1] || 0);
  const wrap = base.images[0].format === 'cloop';
  for (const [i, stage] of ['inject', 'site'].entries()) {
    const path = `KNOPPIX/KNOPPIX${top + 1 + i}`;
    let source = join(ctx.from(stage), 'layer.squashfs');
    if (wrap) {
      // The base's minirt attaches every image to a cloop device; the squashfs inside is
      // already compressed, so the cloop wrapper stores it as it is.
      source = join(work, `KNOPPIX${top + 1 + i}`);
      await makeCloop(join(ctx.from(stage), 'layer.squashfs'), source, 0);
    }
    files.push({ source, path });
  }
  const args = kernelArgs(ctx.options.site.boot.kernelArgs).split(' ');
  for (const menu of base.menus) {
    const extent = (await isoExtents(base.iso, menu)).find((e) => e.path === menu)!;
    const text = (await readExtent(base.iso, extent)).toString('utf8');
    const patched = addKernelArgs(text, menuFormat(menu), args);
    if (patched === text) continue;
    const source = join(work, 'menus', menu);
    await mkdir(dirname(source), { recursive: true });
    await writeFile(source, patched);
    files.push({ source, path: menu });
  }
  // The site's own ISO files go in; our boot menus do not: the base's boot setup is kept.
  const siteIso = join(ctx.from('site'), 'iso');
  for (const e of await walk(siteIso)) {
    if (e.type !== 'file' || e.path.startsWith('boot/')) continue;
    files.push({ source: join(siteIso, e.path), path: e.path });
  }
  for (const f of files) await utimes(f.source, ctx.epoch, ctx.epoch).catch(() => {});
  const iso = join(ctx.out, isoName);
  ctx.log(`layer mode: ${files.map((f) => f.path).join(', ')} into ${base.iso}`);
  await rewriteIso({ base: base.iso, out: iso, epoch: ctx.epoch, files });
  await rm(work, { recursive: true, force: true });
  await writeFile(join(ctx.out, 'iso.json'), `${JSON.stringify({ file: isoName, sha256: await fileDigest(iso) })}\n`);
}

/** The ISO: KNOPPIX layout, layers numbered after the base's, hybrid BIOS/UEFI, CD/USB. */
export const pack = {
  name: 'pack',
  summary: 'the hybrid ISO (isolinux + GRUB EFI, El Torito + MBR/GPT) with xorriso',
  after: ['base', 'unpack', 'minirt', 'inject', 'site'],
  tools: ['xorriso', 'grub-mkimage', 'mkfs.fat', 'mcopy', 'create_compressed_fs'],
  inputs: (o) => ({
    files: [
      fileURLToPath(import.meta.url), fileURLToPath(new URL('../iso/xorriso.ts', import.meta.url)),
      fileURLToPath(new URL('../iso/efi.ts', import.meta.url)), ...Object.values(hostBootFiles),
    ],
    params: { volumeLabel: o.site.iso.volumeLabel },
  }),
  async run(ctx) {
    const baseDir = ctx.from('base');
    const base: BaseInfo = JSON.parse(await readFile(join(baseDir, 'base.json'), 'utf8'));
    if (base.remaster) {
      await remaster(ctx, base.remaster);
      return;
    }
    const tree = join(ctx.out, 'tree');
    const work = join(ctx.out, 'work');
    await mkdir(work, { recursive: true });
    const isolinux = join(tree, 'boot', 'isolinux');
    const kernel: UnpackInfo = JSON.parse(await readFile(join(ctx.from('unpack'), 'unpack.json'), 'utf8'));
    await linkOrCopy(join(ctx.from('unpack'), kernel.kernel), join(isolinux, 'linux'));
    await linkOrCopy(join(ctx.from('minirt'), 'minirt.gz'), join(isolinux, 'minirt.gz'));
    await copyFile(hostBootFiles.isolinux, join(isolinux, 'isolinux.bin'));
    await copyFile(hostBootFiles.ldlinux, join(isolinux, 'ldlinux.c32'));
    const md5 = new Map<string, string>([['KNOPPIX/KNOPPIX', base.rootMd5!]]);
    await linkOrCopy(join(baseDir, base.root!), join(tree, 'KNOPPIX', 'KNOPPIX'));
    const layers = [ctx.from('inject'), ctx.from('site')];
    for (const [i, dir] of layers.entries()) {
      await linkOrCopy(join(dir, 'layer.squashfs'), join(tree, 'KNOPPIX', `KNOPPIX${i + 1}`));
    }
    await copyTree(join(ctx.from('site'), 'iso'), tree);
    const lines: string[] = [];
    for (const e of await walk(tree)) {
      if (e.type !== 'file') continue;
      lines.push(`${md5.get(e.path) ?? (await fileDigest(join(tree, e.path), 'md5'))}  ${e.path}`);
    }
    await writeFile(join(tree, 'KNOPPIX', 'md5sums'), `${lines.join('\n')}\n`);
    const volumeLabel = ctx.options.site.iso.volumeLabel;
    await makeGrubEfi(join(work, 'BOOTX64.EFI'), volumeLabel, work);
    await makeEfiImage(join(work, 'BOOTX64.EFI'), join(work, 'efiboot.img'), ctx.epoch, work);
    await stampTree(tree, ctx.epoch);
    const iso = join(ctx.out, isoName);
    await makeHybridIso({
      tree, out: iso, volumeLabel, epoch: ctx.epoch, efiImage: join(work, 'efiboot.img'),
      bios: { image: 'boot/isolinux/isolinux.bin', catalog: 'boot/isolinux/boot.cat', mbr: hostBootFiles.mbr },
    });
    await rm(tree, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
    await writeFile(join(ctx.out, 'iso.json'), `${JSON.stringify({ file: isoName, sha256: await fileDigest(iso) })}\n`);
  },
} satisfies Stage<BuildOptions>;
