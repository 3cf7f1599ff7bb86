import { existsSync } from 'node:fs';
import { copyFile, cp, lstat, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { linkOrCopy, stampTree } from '../lib/fsutil.ts';
import { dirname, join, resolve } from 'node:path';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { extractRoot, listRoot } from '../iso/rootfs.ts';
import { isStaticElf } from '../iso/elf.ts';
import { extractDeb } from '../iso/deb.ts';
import { run } from '../lib/exec.ts';
import { moduleClosure, readModuleIndex, vermagicSample } from '../iso/modules.ts';
import { UserError } from '../lib/errors.ts';
import { installedPackages } from './01-base.ts';
import { minirtNetModules, netbootImageModules } from './03-minirt.ts';
import { hostFile } from '../lib/host.ts';
import { type UnpackInfo, readBaseInfo, writeBaseFiles, writeUnpackInfo } from './handoff.ts';


/**
 * A replacement kernel package's image and modules tree, moved into dir: what OpenSSI itself
 * shipped as. One kernel a package; anything else is refused naming the file.
 */
async function replacementKernel(deb: string, dir: string): Promise<{ kver: string; kernel: string; modulesDir: string }> {
  const what = `site.json: kernel: ${deb}`;
  if (!existsSync(deb)) throw new UserError(`${what}: no such file`);
  const root = join(dir, 'deb');
  await extractDeb(deb, root, what);
  const bootFiles = existsSync(join(root, 'boot')) ? await readdir(join(root, 'boot')) : [];
  const images = bootFiles.filter((n) => /^vmlinuz-/.test(n));
  if (images.length !== 1) throw new UserError(`${what}: not a Linux kernel package (it holds ${images.length} boot/vmlinuz-* files, not one)`);
  const kver = images[0].slice('vmlinuz-'.length);
  const modulesDir = [`usr/lib/modules/${kver}`, `lib/modules/${kver}`].find((p) => existsSync(join(root, p, 'kernel')));
  if (!modulesDir) throw new UserError(`${what}: kernel ${kver} comes without its modules tree (lib/modules/${kver}/kernel)`);
  // Debian's packages leave modules.dep to their postinst; minirt's module closure needs it.
  if (!existsSync(join(root, modulesDir, 'modules.dep'))) await run('depmod', ['-b', join(root, dirname(dirname(dirname(modulesDir))) || '.'), kver]);
  await copyFile(join(root, 'boot', images[0]), join(dir, 'linux'));
  return { kver, kernel: 'linux', modulesDir: join('deb', modulesDir) };
}

/** What installing packages into a base reads from it besides their own files (see 06-packages). */
export const packageFacts = [
  'var/lib/dpkg/status', 'var/lib/dpkg/diversions', 'var/lib/dpkg/statoverride', 'etc/os-release', 'usr/lib/os-release',
  'etc/passwd', 'etc/group', 'etc/shadow', 'etc/gshadow', 'var/cache/debconf/config.dat', 'etc/ld.so.conf',
];

/**
 * Takes out of the base's compressed root what later stages build against: the kernel's modules
 * (the whole tree for minirt; for a remaster its indexes and the few modules its initrds need)
 * and a static busybox (the default base's own; for a remaster the host's busybox-static: a
 * user's base need not have one). With a replacement kernel package in the site, its kernel and
 * modules stand in for the base's, so minirt, the modules stage and the CD all use the same one.
 */
export const unpack: Stage<BuildOptions> = {
  name: 'unpack',
  module: import.meta.url,
  summary: "the kernel (the base's or the site's package), its modules (all, or a remaster's few), a static busybox",
  after: ['base'],
  tools: ['unsquashfs', 'dpkg-deb', 'depmod'],
  hostFiles: ['busyboxStatic'],
  inputs: (o) => ({
    files: [...(o.site.kernel ? [resolve(o.siteDir, o.site.kernel)] : []), ...(o.base ? [hostFile('busyboxStatic')] : [])],
    params: { initrdModules: o.site.initrdModules, netboot: [...minirtNetModules, ...netbootImageModules] },
  }),
  async run(ctx) {
    const baseDir = ctx.from('base');
    const info = await readBaseInfo(baseDir);
    const kver = info.kernelVersion;
    const root = join(ctx.out, 'root');
    await mkdir(root, { recursive: true });
    const image = { ...info.rootImage, file: resolve(baseDir, info.rootImage.file) };
    const what = info.remaster ? `--base ${info.remaster.iso}: ${info.remaster.images[0].path}` : `base: ${info.root}`;
    const readable = <T>(reading: Promise<T>) => reading.catch((error) => {
      throw new UserError(`${what}: cannot read its ${image.format} root: ${String(error?.stderr ?? error?.message).trim().split('\n').filter(Boolean).pop()}`);
    });
    const extract = (paths: string[]) => readable(extractRoot(image, root, paths));
    const baseFiles = await readable(listRoot(image));
    // Merged-/usr systems keep these under usr/, older ones at the top.
    const listed = new Set(baseFiles);
    const modulesDir = [`usr/lib/modules/${kver}`, `lib/modules/${kver}`].find((p) => listed.has(`${p}/modules.dep`));
    if (!modulesDir) throw new UserError(`${what}: no modules for its kernel ${kver} (lib/modules/${kver}/modules.dep)`);
    const busyboxes = info.remaster ? [] : ['usr/bin/busybox', 'bin/busybox'].filter((p) => listed.has(p));
    const status = 'var/lib/dpkg/status';
    const indexes = baseFiles.filter((p) => p.startsWith(`${modulesDir}/modules.`));
    // minirt (the default base) needs the kernel's drivers; a remaster needs only the indexes
    // (the modules stage writes the new ones from their text), the modules its initrds get (the
    // site's initrdModules; the netboot minirt's NIC and image drivers), and one module to read
    // the kernel's vermagic from: not the ~400 MB tree.
    const whole = !info.remaster || !['modules.dep', 'modules.alias', 'modules.symbols'].every((n) => listed.has(`${modulesDir}/${n}`));
    const keepBaseModules = !ctx.options.site.kernel;
    // A remaster's package database, release and what maintainer scripts read and change: the
    // packages stage adds what the base lacks, keyed by these alone.
    const facts = info.remaster ? packageFacts.filter((p) => listed.has(p)) : [];
    await extract([...(whole && keepBaseModules ? [modulesDir] : indexes), ...busyboxes, ...facts]);
    if (!whole && keepBaseModules) {
      const index = await readModuleIndex(join(root, modulesDir));
      const { files } = moduleClosure(index, [...ctx.options.site.initrdModules, ...minirtNetModules, ...netbootImageModules]);
      await extract([...new Set([vermagicSample(index), ...files])].map((f) => `${modulesDir}/${f}`));
    }
    if (whole && info.remaster && keepBaseModules) {
      // A remaster takes the whole tree only when depmod's text indexes are missing: make them,
      // the modules stage writes from them.
      await run('depmod', ['-b', join(root, dirname(dirname(dirname(modulesDir)))), kver]);
    }
    let busybox = busyboxes.find((p) => isStaticElf(join(root, p)));
    if (busybox) busybox = join('root', busybox);
    else if (info.remaster) {
      await copyFile(hostFile('busyboxStatic'), join(ctx.out, 'busybox'));
      busybox = 'busybox';
    } else throw new UserError(`${what}: no static busybox for minirt (Debian package busybox-static)`);
    const imageModulesDir = dirname(modulesDir);
    let result: UnpackInfo = {
      kernelVersion: kver, kernel: 'linux', modulesDir: join('root', modulesDir), imageModulesDir,
      baseKernelVersion: kver, busybox,
    };
    if (ctx.options.site.kernel) {
      const swap = await replacementKernel(resolve(ctx.options.siteDir, ctx.options.site.kernel), ctx.out);
      ctx.log(`kernel ${swap.kver} from the site's package replaces the base's ${kver}`);
      result = { ...result, kernelVersion: swap.kver, kernel: swap.kernel, modulesDir: swap.modulesDir };
    } else {
      await linkOrCopy(join(baseDir, info.kernel), join(ctx.out, 'linux'));
    }
    // A user's base: its package list for the manifest (the default base's is in base.json).
    if (info.remaster && existsSync(join(root, status))) {
      result.packages = installedPackages(await readFile(join(root, status), 'utf8'));
    }
    // With the base's times: they are the packages stage's inputs, its epoch among them (folders
    // and symlinks get the newest file's time).
    let newest = 0;
    for (const p of facts) {
      await mkdir(dirname(join(ctx.out, 'facts', p)), { recursive: true });
      await cp(join(root, p), join(ctx.out, 'facts', p), { preserveTimestamps: true, verbatimSymlinks: true });
      const st = await lstat(join(root, p)); // a symlink's own time is when it was unpacked
      if (st.isFile()) newest = Math.max(newest, st.mtimeMs / 1000);
    }
    if (facts.length) await stampTree(join(ctx.out, 'facts'), Math.floor(newest), { filesToo: false });
    // The base's paths, so the manifest can tell a file the layers add from one they replace.
    await writeBaseFiles(ctx.out, baseFiles);
    await writeUnpackInfo(ctx.out, result);
  },
};
