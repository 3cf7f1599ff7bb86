import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from '../lib/errors.ts';
import { walk } from '../lib/hash.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage, StageContext } from '../lib/runner.ts';
import { extractCloop, makeCloop } from '../iso/cloop.ts';
import { checksumAlgorithm, checksumLine, checksumLists, copyExtent, imageFormat, isoExtents, menuInitrds, readIsoFile, type BaseIso, type IsoExtent } from '../iso/layout.ts';
import { addKernelArgs, ensureTimeout, isTopMenu, menuFormat } from '../iso/menus.ts';
import { mergeLayer } from '../iso/overlay.ts';
import { extractRoot, type RootImage } from '../iso/rootfs.ts';
import { makeSquashfs, squashfsCompressor } from '../iso/squashfs.ts';
import { rewriteIso } from '../iso/xorriso.ts';
import { run } from '../lib/exec.ts';
import { initrdModuleSources, initrdModulesInputs, initrdWithModules } from './initrd-modules.ts';
import { kernelArgList } from './08-site.ts';
import { isoName } from './09-pack.ts';
import { type BaseInfo, readBaseInfo, writeIsoInfo } from './handoff.ts';
import { type NetbootImage, netbootListPath, writeNetbootList } from './netboot-list.ts';
import { fileDigest } from '../lib/hash.ts';

type Base = NonNullable<BaseInfo['remaster']>;
interface IsoFile { source: string; path: string }

/**
 * Layer mode: the OpenSSI and site layers go in as the next images in the base's own format
 * (KNOPPIX/KNOPPIXn; a cloop base gets cloop-wrapped layers). The base's images stay as they are.
 */
async function layerImages(ctx: StageContext<BuildOptions>, base: Base, work: string): Promise<IsoFile[]> {
  const files: IsoFile[] = [];
  const names = layerNames(base);
  for (const [i, stage] of ['inject', 'site'].entries()) {
    const path = names[i];
    let source = join(ctx.from(stage), 'layer.squashfs');
    if (base.images[0].format === 'cloop') {
      // The base's minirt attaches every image to a cloop device; the squashfs inside is
      // already compressed, so the cloop wrapper stores its blocks as they are (level 0).
      source = join(work, path.split('/').pop()!);
      await makeCloop(join(ctx.from(stage), 'layer.squashfs'), source, 0);
    }
    files.push({ source, path });
  }
  if (base.layout === 'debian-live') {
    // live-boot mounts only the images filesystem.module names, when there is one.
    const module = await readIsoFile(base.iso, 'live/filesystem.module');
    if (module) {
      const text = module.toString('utf8').replace(/\n*$/, '\n');
      await writeFile(join(work, 'filesystem.module'), `${text}${names.map((n) => n.slice('live/'.length)).join('\n')}\n`);
      files.push({ source: join(work, 'filesystem.module'), path: 'live/filesystem.module' });
    }
  }
  return files;
}

/**
 * Where our two layers go: the next KNOPPIX/KNOPPIXn, or live/*.squashfs names that sort after
 * every image of the base (live-boot stacks them in name order, the last on top).
 */
export function layerNames(base: { layout: BaseIso['layout']; images: { path: string }[]; iso: string }): string[] {
  const last = base.images[base.images.length - 1].path;
  if (base.layout === 'knoppix') {
    const top = Number(/(\d*)$/.exec(last)![1] || 0);
    return [`KNOPPIX/KNOPPIX${top + 1}`, `KNOPPIX/KNOPPIX${top + 2}`];
  }
  const names = ['live/zz-openssi-1.squashfs', 'live/zz-openssi-2-site.squashfs'];
  if (Buffer.compare(Buffer.from(names[0]), Buffer.from(last)) <= 0) {
    throw new UserError(`--base ${base.iso}: ${last} sorts after our layers' names (${names[0]}), so live-boot would stack it over them`);
  }
  return names;
}

/** One image of the base as a readable filesystem (a cloop image is unpacked to its inside). */
async function readable(base: Base, image: IsoExtent & { format: string }, work: string): Promise<RootImage> {
  if (image.format === 'squashfs') return { file: base.iso, offset: image.offset, format: 'squashfs' };
  const cloop = join(work, 'image.cloop');
  await copyExtent(base.iso, image, cloop);
  const inner = join(work, `${image.path.replace(/\W/g, '_')}.img`);
  await extractCloop(cloop, inner, `--base ${base.iso}: ${image.path}`);
  await rm(cloop);
  const format = await imageFormat(inner);
  if (format !== 'squashfs' && format !== 'iso9660') throw new UserError(`--base ${base.iso}: ${image.path}: the cloop image holds neither ISO 9660 nor squashfs`);
  return { file: inner, offset: 0, format };
}

/**
 * Flatten mode: the base's images and our layers merged into one root and recompressed in the
 * base's own format (squashfs with its compressor unless --compressor says otherwise; cloop
 * with the same filesystem inside as the base's).
 */
async function flattenImages(ctx: StageContext<BuildOptions>, base: Base, work: string): Promise<{ files: IsoFile[]; remove: string[] }> {
  const root = join(work, 'root');
  let lowest: RootImage | undefined;
  for (const [i, image] of base.images.entries()) {
    const fs = await readable(base, image, work);
    if (i === 0) lowest = fs;
    const dir = i === 0 ? root : join(work, 'layer');
    ctx.log(`unpacking ${image.path} (${image.format})`);
    await extractRoot(fs, dir).catch((error) => {
      throw new UserError(`--base ${base.iso}: ${image.path}: cannot unpack its ${fs.format} root: ${String(error?.stderr ?? error?.message).trim().split('\n').filter(Boolean).pop()}`);
    });
    if (i > 0) {
      await mergeLayer(root, dir);
      await rm(dir, { recursive: true, force: true }); // the next image must not meet this one's files
    }
    if (fs.file !== base.iso) await rm(fs.file, { force: true });
  }
  for (const stage of ['inject', 'site']) {
    const dir = join(work, 'layer');
    await extractRoot({ file: join(ctx.from(stage), 'layer.squashfs'), offset: 0, format: 'squashfs' }, dir);
    await mergeLayer(root, dir);
    await rm(dir, { recursive: true, force: true });
  }
  const out = join(work, 'KNOPPIX');
  if (base.images[0].format === 'squashfs') {
    const compressor = ctx.options.compressor ?? (await squashfsCompressor(base.iso, base.images[0].offset)) ?? 'xz';
    ctx.log(`squashfs (${compressor}) of the merged root`);
    await makeSquashfs(root, out, { epoch: ctx.epoch, compression: [compressor] });
  } else {
    const inner = join(work, 'root.inner');
    ctx.log(`cloop (${lowest!.format} inside) of the merged root`);
    if (lowest!.format === 'iso9660') {
      await run('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-U', '-o', inner, root], { env: { SOURCE_DATE_EPOCH: String(ctx.epoch) } });
    } else {
      await makeSquashfs(root, inner, { epoch: ctx.epoch, compression: ['gzip'] });
    }
    await makeCloop(inner, out, 9);
    await rm(inner);
  }
  await rm(root, { recursive: true, force: true });
  return { files: [{ source: out, path: base.images[0].path }], remove: base.images.slice(1).map((i) => i.path) };
}

/**
 * Every boot menu of the base with our kernel arguments added to each entry, and a timeout
 * (the site's boot.timeout) where the base's menu would wait for a key forever.
 */
async function menus(ctx: StageContext<BuildOptions>, menuTexts: Map<string, string>, work: string): Promise<IsoFile[]> {
  const args = kernelArgList(ctx.options.site.boot.kernelArgs);
  const files: IsoFile[] = [];
  for (const [menu, text] of menuTexts) {
    let patched = addKernelArgs(text, menuFormat(menu), args);
    if (isTopMenu(menu)) patched = ensureTimeout(patched, menuFormat(menu), ctx.options.site.boot.timeout);
    if (patched === text) continue;
    const source = join(work, 'menus', menu);
    await mkdir(dirname(source), { recursive: true });
    await writeFile(source, patched);
    files.push({ source, path: menu });
  }
  return files;
}

/**
 * The base's initrds (the last one each boot entry loads, after any microcode) with the site's
 * initrdModules added in an archive after each; what comes before stays as it is.
 */
async function initrdFiles(ctx: StageContext<BuildOptions>, base: Base, menuTexts: Map<string, string>, extents: IsoExtent[], work: string): Promise<IsoFile[]> {
  const onCd = new Set(extents.map((e) => e.path));
  const paths = new Set<string>();
  for (const [menu, text] of menuTexts) {
    for (const entry of menuInitrds(text, menu)) {
      if (onCd.has(entry[entry.length - 1])) paths.add(entry[entry.length - 1]);
    }
  }
  const sources = await initrdModuleSources(ctx.options, ctx.from('unpack'), ctx.from('modules'));
  if (paths.size === 0) throw new UserError(`${sources.siteFile}: initrdModules: no boot entry of --base ${base.iso} loads an initrd that is on the CD`);
  const files: IsoFile[] = [];
  const done: { initrd: Buffer; source: string }[] = []; // Debian live names the same initrd twice
  for (const [i, path] of [...paths].sort().entries()) {
    const initrd = (await readIsoFile(base.iso, path, extents))!;
    let source = done.find((d) => d.initrd.equals(initrd))?.source;
    if (!source) {
      source = join(work, 'initrd', String(i), path.split('/').pop()!);
      await mkdir(dirname(source), { recursive: true });
      await writeFile(source, await initrdWithModules({
        ...sources, initrd, what: `--base ${base.iso}: ${path}`, scratch: join(work, 'initrd-tree', String(i)), epoch: ctx.epoch,
      }));
      done.push({ initrd, source });
    }
    files.push({ source, path });
  }
  ctx.log(`${files.map((f) => f.path).join(', ')} load${files.length === 1 ? 's' : ''} ${sources.names.join(', ')} before the base's init`);
  return files;
}

/**
 * What node 1 serves its netbooted nodes (openssi/netboot.list and the project's minirt): the
 * base's kernel, our netboot minirt built against it, and the root images as this CD stacks them.
 */
async function netbootFiles(ctx: StageContext<BuildOptions>, base: Base, images: { files: IsoFile[]; remove: string[] }, digest: Digest, work: string): Promise<IsoFile[]> {
  const stack: NetbootImage[] = [];
  const format = (f: string) => (f === 'cloop' ? 'cloop' : 'squashfs');
  const replaced = new Map(images.files.map((f) => [f.path, f.source]));
  for (const image of base.images) {
    if (images.remove.includes(image.path)) continue;
    const source = replaced.get(image.path);
    stack.push({ path: image.path, format: format(image.format), checksum: source ? await digest(source, 'md5') : base.imageChecksums[image.path] });
  }
  for (const f of images.files) {
    if (!/\.squashfs$|KNOPPIX\d*$/.test(f.path) || base.images.some((i) => i.path === f.path)) continue;
    stack.push({ path: f.path, format: format(base.images[0].format), checksum: await digest(f.source, 'md5') });
  }
  const minirt = join(work, 'netboot', 'minirt.gz');
  await mkdir(dirname(minirt), { recursive: true });
  if (ctx.options.site.initrdModules.length) {
    const sources = await initrdModuleSources(ctx.options, ctx.from('unpack'), ctx.from('modules'));
    await writeFile(minirt, await initrdWithModules({
      ...sources, initrd: await readFile(join(ctx.from('minirt'), 'minirt.gz')), what: 'the netboot minirt.gz', scratch: join(work, 'netboot-initrd'), epoch: ctx.epoch,
    }));
  } else {
    await copyFile(join(ctx.from('minirt'), 'minirt.gz'), minirt);
  }
  const list = join(work, 'netboot.list');
  await writeNetbootList(list, { kernel: base.kernel, initrd: 'openssi/netboot/minirt.gz', images: stack });
  return [{ source: minirt, path: 'openssi/netboot/minirt.gz' }, { source: list, path: netbootListPath }];
}

/** A file's digest by algorithm, each file read once for each algorithm asked for. */
type Digest = (file: string, algorithm: 'md5' | 'sha256') => Promise<string>;

function digests(): Digest {
  const seen = new Map<string, Promise<string>>();
  return (file, algorithm) => {
    const key = `${algorithm} ${file}`;
    if (!seen.has(key)) seen.set(key, fileDigest(file, algorithm));
    return seen.get(key)!;
  };
}

/**
 * The base's own checksum lists (KNOPPIX/md5sums, live-build's md5sum.txt and sha256sum.txt),
 * kept true for the new CD, as KNOPPIX's `testcd` and live-boot's `verify-checksums` check the
 * CD against them: what this remaster adds or replaces gets its checksum (in the list's own
 * path spelling), what it removes goes, and every other line stays as the base had it.
 */
async function checksumListFiles(base: Base, extents: IsoExtent[], files: IsoFile[], remove: string[], digest: Digest, work: string): Promise<IsoFile[]> {
  const lists: IsoFile[] = [];
  const changed = new Map(files.filter((f) => !checksumLists.includes(f.path)).map((f) => [f.path, f.source]));
  for (const list of checksumLists) {
    const text = (await readIsoFile(base.iso, list, extents))?.toString('latin1');
    if (text === undefined || files.some((f) => f.path === list)) continue; // none, or the site's own
    const algorithm = checksumAlgorithm(list);
    const listed = new Set<string>();
    let prefix = '';
    const lines: string[] = [];
    for (const line of text.split('\n').filter(Boolean)) {
      const entry = checksumLine(line, algorithm);
      if (!entry) {
        lines.push(line);
        continue;
      }
      prefix = entry.prefix;
      listed.add(entry.path);
      if (remove.includes(entry.path)) continue;
      const source = changed.get(entry.path);
      lines.push(source ? `${await digest(source, algorithm)} ${entry.mode}${prefix}${entry.path}` : line);
    }
    for (const [path, source] of changed) if (!listed.has(path)) lines.push(`${await digest(source, algorithm)}  ${prefix}${path}`);
    const source = join(work, 'checksums', list);
    await mkdir(dirname(source), { recursive: true });
    await writeFile(source, `${lines.join('\n')}\n`, 'latin1');
    lists.push({ source, path: list });
  }
  return lists;
}

/**
 * A user's live ISO remastered: our layers in (layer mode) or merged in (flatten mode), every
 * boot entry with our kernel arguments, the site's ISO files, and the ISO rewritten by xorriso
 * with the base's boot setup (El Torito, MBR/GPT, EFI partition) and untouched data reused.
 */
export const remaster = {
  name: 'remaster',
  module: import.meta.url,
  summary: "the user's ISO with our layers (layer mode) or merged and recompressed (flatten mode)",
  after: ['base', 'unpack', 'minirt', 'modules', 'inject', 'site'],
  when: (o) => Boolean(o.base),
  tools: ['xorriso', 'create_compressed_fs', 'mksquashfs', 'unsquashfs'],
  inputs: (o) => ({
    files: initrdModulesInputs,
    params: { pack: o.pack, compressor: o.compressor ?? null, kernelArgs: o.site.boot.kernelArgs, timeout: o.site.boot.timeout, initrdModules: o.site.initrdModules },
  }),
  async run(ctx) {
    const info = await readBaseInfo(ctx.from('base'));
    const base = info.remaster!;
    const work = join(ctx.out, 'work');
    await mkdir(work, { recursive: true });
    const images = ctx.options.pack === 'flatten' ? await flattenImages(ctx, base, work) : { files: await layerImages(ctx, base, work), remove: [] };
    const extents = await isoExtents(base.iso, ''); // one look at the ISO for all its menus
    const menuTexts = new Map<string, string>();
    for (const menu of base.menus) menuTexts.set(menu, (await readIsoFile(base.iso, menu, extents))!.toString('utf8'));
    const digest = digests();
    const files = [...images.files, ...(await menus(ctx, menuTexts, work)), ...(await netbootFiles(ctx, base, images, digest, work))];
    if (ctx.options.site.initrdModules.length) files.push(...(await initrdFiles(ctx, base, menuTexts, extents, work)));
    // The site's own ISO files go in; our boot menus do not: the base's boot setup is kept.
    const siteIso = join(ctx.from('site'), 'iso');
    for (const e of await walk(siteIso)) {
      if (e.type === 'file' && !e.path.startsWith('boot/')) files.push({ source: join(siteIso, e.path), path: e.path });
    }
    files.push(...(await checksumListFiles(base, extents, files, images.remove, digest, work)));
    ctx.log(`${ctx.options.pack} mode: ${files.map((f) => f.path).join(', ')}${images.remove.length ? `; out: ${images.remove.join(', ')}` : ''}`);
    const iso = join(ctx.out, isoName);
    const sha256 = await rewriteIso({ base: base.iso, out: iso, epoch: ctx.epoch, files, remove: images.remove });
    await rm(work, { recursive: true, force: true });
    await writeIsoInfo(ctx.out, { file: isoName, sha256 });
  },
} satisfies Stage<BuildOptions>;
