import { existsSync, statSync } from 'node:fs';
import { chown, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { onPath, run } from '../lib/exec.ts';
import { hostFile } from '../lib/host.ts';
import { fileDigest } from '../lib/hash.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { makeSquashfs } from '../iso/squashfs.ts';
import { checksumLists, copyExtent, imageFormat, isoExtents, listedChecksums, readBaseIso, readIsoFile, type BaseIso } from '../iso/layout.ts';
import { bzImageRelease } from '../iso/kernel.ts';
import { extractCloop } from '../iso/cloop.ts';
import { UserError } from '../lib/errors.ts';
import { type BaseInfo, writeBaseInfo } from './handoff.ts';
import { rangeMd5 } from './netboot-list.ts';
import { userlandPackages } from './userland.ts';

/** The default base: a small Debian 12 system, the generic amd64 kernel, and what the CD runs. */
export const defaultBase = {
  suite: 'bookworm',
  variant: 'minbase',
  // The kernel, sysvinit (KNOPPIX's init), what the OpenSSI userland runs (radvd among it, so
  // that a netbooting iPXE need not wait for IPv6 router discovery), criu, which moves running
  // processes between nodes (a remaster without it places them at start only), and chrony for
  // NTP across the cluster (a remaster without it keeps ssi-timesync alone); keepalived and
  // ipvsadm for the CVIP (README.CVIP; a remaster without them has no CVIP).
  packages: ['linux-image-amd64', 'sysvinit-core', ...userlandPackages.map((p) => p[0]), 'criu', 'chrony', 'keepalived', 'ipvsadm'],
  // Documentation and translations make the CD bigger and the build slower, and nobody reads
  // them on a cluster node; copyright files stay.
  pathExclude: ['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/locale/*', '/usr/share/info/*'],
  pathInclude: ['/usr/share/doc/*/copyright'],
  compression: ['zstd', 10] as [string, number],
};


/**
 * A user's live ISO, read in place: its layout and boot setup, its kernel (and release), and
 * its lowest root image as a readable filesystem. A squashfs root is read where it lies in the
 * ISO; a cloop root is unpacked once into the stage (cloop has no random access from outside).
 */
async function remasterBase(iso: string, out: string, log: (m: string) => void): Promise<BaseInfo> {
  const found = await readBaseIso(iso);
  await writeFile(join(out, 'linux'), (await readIsoFile(iso, found.kernel))!);
  const kver = await bzImageRelease(join(out, 'linux'));
  if (!kver) throw new UserError(`--base ${iso}: ${found.kernel} is not an x86 Linux kernel image`);
  const lowest = found.images[0];
  let rootImage: BaseInfo['rootImage'];
  if (lowest.format === 'squashfs') rootImage = { file: iso, offset: lowest.offset, format: 'squashfs' };
  else if (lowest.format === 'cloop') {
    log(`cloop ${lowest.path}: unpacking the root once to read its kernel modules`);
    const cloop = join(out, 'root.cloop');
    await copyExtent(iso, lowest, cloop);
    await extractCloop(cloop, join(out, 'root.img'), `--base ${iso}: ${lowest.path}`);
    await rm(cloop);
    const inner = await imageFormat(join(out, 'root.img'));
    if (inner !== 'squashfs' && inner !== 'iso9660') throw new UserError(`--base ${iso}: ${lowest.path}: the cloop image holds neither ISO 9660 nor squashfs (${inner})`);
    rootImage = { file: 'root.img', offset: 0, format: inner };
  } else throw new UserError(`--base ${iso}: ${lowest.path} is neither squashfs nor cloop (${lowest.format})`);
  log(`${found.layout} layout, kernel ${kver}, ${found.images.map((i) => `${i.path} (${i.format})`).join(', ')}`);
  // netboot.list carries each image's checksum, which netbooted nodes check what they load
  // against: the one the CD's own checksum list gives (made when the CD was mastered, so a bad
  // download or burn is caught too, and no gigabyte is read here), else its md5, read once here.
  const listed = await listedChecksums(iso, await isoExtents(iso, ''));
  const imageChecksums: Record<string, string> = {};
  for (const i of found.images) imageChecksums[i.path] = listed.get(i.path) ?? await rangeMd5(iso, i.offset, i.size);
  const fromLists = found.images.filter((i) => listed.has(i.path)).map((i) => i.path);
  if (fromLists.length) log(`checksums of ${fromLists.join(', ')} from the CD's own list (${checksumLists.join(' or ')})`);
  return {
    layout: found.layout, kernelVersion: kver, kernel: 'linux', rootImage, packages: [],
    source: `remastered from ${iso}`, remaster: { ...found, iso, imageChecksums },
  };
}

/** Debian's kernel packages want an initramfs generator; minirt is ours, so this stands in. */
async function initramfsStandIn(dir: string, epoch: number): Promise<string> {
  const pkg = join(dir, 'pkg');
  await mkdir(join(pkg, 'DEBIAN'), { recursive: true });
  await writeFile(join(pkg, 'DEBIAN', 'control'), [
    'Package: openssi-live-minirt', 'Version: 1', 'Architecture: all', 'Priority: optional',
    'Section: admin', 'Maintainer: openssi-live <root@localhost>', 'Provides: linux-initramfs-tool',
    'Description: the live CD boots with its own initramfs (minirt), not one made on the system', '',
  ].join('\n'));
  const deb = join(dir, 'openssi-live-minirt.deb');
  await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', pkg, deb], { env: { SOURCE_DATE_EPOCH: String(epoch) } });
  return deb;
}

/** Debian's root from the mirror: the default packages, the stand-in, no documentation. */
async function mmdebstrap(root: string, standin: string, mirror: string, epoch: number): Promise<void> {
  await run('mmdebstrap', [
    '--mode=auto', `--variant=${defaultBase.variant}`, '--format=directory',
    `--hook-dir=${hostFile('mmdebstrapMirrorHook')}`,
    // eatmydata: dpkg without fsync, much faster; optional (setup installs it).
    ...(existsSync(hostFile('mmdebstrapEatmydataHook')) && onPath('eatmydata') ? [`--hook-dir=${hostFile('mmdebstrapEatmydataHook')}`] : []),
    `--include=${defaultBase.packages.join(',')}`, `--include=${standin}`,
    ...defaultBase.pathExclude.map((p) => `--dpkgopt=path-exclude=${p}`),
    ...defaultBase.pathInclude.map((p) => `--dpkgopt=path-include=${p}`),
    defaultBase.suite, root, ...mirrors(mirror, defaultBase.suite),
  ], { env: { SOURCE_DATE_EPOCH: String(epoch) } });
}

function isoIdentity(iso: string): { size: number; mtimeMs: number } | { missing: true } {
  try {
    const st = statSync(iso);
    return { size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return { missing: true };
  }
}

export function mirrors(mirror: string, suite: string): string[] {
  const security = mirror.replace(/\/debian\/?$/, '/debian-security');
  return [
    `deb ${mirror} ${suite} main`,
    `deb ${mirror} ${suite}-updates main`,
    ...(security !== mirror ? [`deb ${security} ${suite}-security main`] : []),
  ];
}

/** Parses dpkg's status file into "name version" lines for the manifest. */
export function installedPackages(status: string): string[] {
  return status.split('\n\n').flatMap((stanza) => {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    const version = /^Version: (.+)$/m.exec(stanza)?.[1];
    return name && version && /^Status: .* installed$/m.test(stanza) ? [`${name} ${version}`] : [];
  }).sort();
}

export const base: Stage<BuildOptions> = {
  name: 'base',
  module: import.meta.url,
  summary: 'the base system: Debian 12 via mmdebstrap (cached by its package set), or --base ISO',
  after: [],
  tools: ['mmdebstrap', 'mksquashfs', 'dpkg-deb', 'xorriso', 'extract_compressed_fs'],
  hostFiles: ['mmdebstrapMirrorHook'],
  inputs: (o) => ({
    files: [],
    // A user's ISO is named by path, size and time, not hashed: hashing gigabytes costs more
    // than the remaster itself. Touching or replacing the file makes a new key.
    params: o.base ? { iso: o.base, ...isoIdentity(o.base) } : { ...defaultBase, mirror: o.mirror },
  }),
  async run(ctx) {
    if (ctx.options.base) {
      const info = await remasterBase(ctx.options.base, ctx.out, ctx.log);
      await writeBaseInfo(ctx.out, info);
      return;
    }
    const root = join(ctx.out, 'root');
    // mmdebstrap makes an --include'd .deb visible in the root at its own host path, and
    // leaves the folders it made for it there: under /tmp they go with mmdebstrap's /tmp
    // cleanup; under the cache they put the build's folder (and its pid) into the image.
    const standin = await mkdtemp('/tmp/openssi-live-standin-');
    try {
      ctx.log(`mmdebstrap ${defaultBase.suite} (${defaultBase.packages.length} packages and their dependencies)`);
      await mmdebstrap(root, await initramfsStandIn(standin, ctx.epoch), ctx.options.mirror, ctx.epoch);
    } finally {
      await rm(standin, { recursive: true, force: true });
    }
    await rm(join(root, standin), { recursive: true, force: true });
    // The builder's own name and resolver leak in otherwise, and would differ between machines.
    await writeFile(join(root, 'etc', 'hostname'), 'knoppix\n');
    // apt hands its download folders to _apt only when it downloads into them, which one run
    // did and the next did not: give them the owner an installed Debian has.
    const aptUid = Number(/^_apt:[^:]*:(\d+):/m.exec(await readFile(join(root, 'etc', 'passwd'), 'utf8'))?.[1] ?? 0);
    for (const partial of ['var/cache/apt/archives/partial', 'var/lib/apt/lists/partial']) {
      if (existsSync(join(root, partial))) await chown(join(root, partial), aptUid, 0);
    }
    await writeFile(join(root, 'etc', 'resolv.conf'), '');
    const kernels = await readdir(join(root, 'lib', 'modules'));
    if (kernels.length !== 1) throw new Error(`base: expected one kernel in /lib/modules, found ${kernels.join(', ') || 'none'}`);
    const kver = kernels[0];
    await copyFile(join(root, 'boot', `vmlinuz-${kver}`), join(ctx.out, 'linux'));
    const packages = installedPackages(await readFile(join(root, 'var', 'lib', 'dpkg', 'status'), 'utf8'));
    ctx.log(`squashfs of the root (kernel ${kver}, ${packages.length} packages)`);
    await makeSquashfs(root, join(ctx.out, 'KNOPPIX'), { epoch: ctx.epoch, compression: defaultBase.compression });
    await rm(root, { recursive: true, force: true });
    const info: BaseInfo = {
      layout: 'knoppix', kernelVersion: kver, kernel: 'linux', root: 'KNOPPIX',
      rootImage: { file: 'KNOPPIX', offset: 0, format: 'squashfs' },
      rootMd5: await fileDigest(join(ctx.out, 'KNOPPIX'), 'md5'), packages,
      source: `debian ${defaultBase.suite} ${defaultBase.variant} via mmdebstrap from ${ctx.options.mirror}`,
    };
    await writeBaseInfo(ctx.out, info);
  },
};
