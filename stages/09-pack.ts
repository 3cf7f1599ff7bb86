import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyTree, linkOrCopy, stampTree } from '../lib/fsutil.ts';
import { fileDigest, walk } from '../lib/hash.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { hostFile } from '../lib/host.ts';
import { makeEfiImage, makeGrubEfi } from '../iso/efi.ts';
import { makeHybridIso } from '../iso/xorriso.ts';
import { initrdModuleSources, initrdModulesInputs, initrdWithModules } from './initrd-modules.ts';
import { readBaseInfo, readUnpackInfo, writeIsoInfo } from './handoff.ts';
import { netbootListPath, writeNetbootList } from './netboot-list.ts';

/** Boot loader files taken from the host's Debian packages (isolinux, syslinux-common, GRUB). */
const bootFiles = ['isolinuxBin', 'isohybridMbr', 'ldlinux', 'grubEfiModules'] as const;

export const isoName = 'knoppix-openssi.iso';

/** The ISO: KNOPPIX layout, layers numbered after the base's, hybrid BIOS/UEFI, CD/USB. */
export const pack = {
  name: 'pack',
  module: import.meta.url,
  summary: 'the hybrid ISO (isolinux + GRUB EFI, El Torito + MBR/GPT) with xorriso',
  after: ['base', 'unpack', 'minirt', 'modules', 'inject', 'site'],
  when: (o) => !o.base,
  tools: ['xorriso', 'grub-mkimage', 'mkfs.fat', 'mcopy', 'create_compressed_fs'],
  hostFiles: [...bootFiles],
  inputs: (o) => ({
    files: [...bootFiles.map(hostFile), ...initrdModulesInputs],
    params: { volumeLabel: o.site.iso.volumeLabel, initrdModules: o.site.initrdModules },
  }),
  async run(ctx) {
    const baseDir = ctx.from('base');
    const base = await readBaseInfo(baseDir);
    const tree = join(ctx.out, 'tree');
    const work = join(ctx.out, 'work');
    await mkdir(work, { recursive: true });
    const isolinux = join(tree, 'boot', 'isolinux');
    const kernel = await readUnpackInfo(ctx.from('unpack'));
    await linkOrCopy(join(ctx.from('unpack'), kernel.kernel), join(isolinux, 'linux'));
    const minirt = join(ctx.from('minirt'), 'minirt.gz');
    if (ctx.options.site.initrdModules.length) {
      // Netbooted nodes fetch this same file, so they load the modules too.
      const sources = await initrdModuleSources(ctx.options, ctx.from('unpack'), ctx.from('modules'));
      await writeFile(join(isolinux, 'minirt.gz'), await initrdWithModules({
        ...sources, initrd: await readFile(minirt), what: 'minirt.gz', scratch: join(work, 'initrd'), epoch: ctx.epoch,
      }));
      ctx.log(`minirt.gz loads ${sources.names.join(', ')} before its init`);
    } else {
      await linkOrCopy(minirt, join(isolinux, 'minirt.gz'));
    }
    await copyFile(hostFile('isolinuxBin'), join(isolinux, 'isolinux.bin'));
    await copyFile(hostFile('ldlinux'), join(isolinux, 'ldlinux.c32'));
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
      if (!md5.has(e.path)) md5.set(e.path, await fileDigest(join(tree, e.path), 'md5'));
      lines.push(`${md5.get(e.path)}  ${e.path}`);
    }
    await writeFile(join(tree, 'KNOPPIX', 'md5sums'), `${lines.join('\n')}\n`);
    await mkdir(join(tree, 'openssi'), { recursive: true });
    await writeNetbootList(join(tree, netbootListPath), {
      kernel: 'boot/isolinux/linux', initrd: 'boot/isolinux/minirt.gz',
      images: ['KNOPPIX/KNOPPIX', 'KNOPPIX/KNOPPIX1', 'KNOPPIX/KNOPPIX2'].map((path) => ({ path, format: 'squashfs', checksum: md5.get(path)! })),
    });
    const volumeLabel = ctx.options.site.iso.volumeLabel;
    await makeGrubEfi(join(work, 'BOOTX64.EFI'), volumeLabel, work);
    await makeEfiImage(join(work, 'BOOTX64.EFI'), join(work, 'efiboot.img'), ctx.epoch, work);
    await stampTree(tree, ctx.epoch);
    const iso = join(ctx.out, isoName);
    await makeHybridIso({
      tree, out: iso, volumeLabel, epoch: ctx.epoch, efiImage: join(work, 'efiboot.img'),
      bios: { image: 'boot/isolinux/isolinux.bin', catalog: 'boot/isolinux/boot.cat', mbr: hostFile('isohybridMbr') },
    });
    await rm(tree, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
    await writeIsoInfo(ctx.out, { file: isoName, sha256: await fileDigest(iso) });
  },
} satisfies Stage<BuildOptions>;
