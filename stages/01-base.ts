import { existsSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/exec.ts';
import { fileDigest } from '../lib/hash.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { makeSquashfs } from '../iso/squashfs.ts';
import { describeBaseIso } from '../iso/layout.ts';
import { UserError } from '../lib/errors.ts';

/** The default base: a small Debian 12 system, the generic amd64 kernel, and what the CD runs. */
export const defaultBase = {
  suite: 'bookworm',
  variant: 'minbase',
  packages: [
    'linux-image-amd64', 'sysvinit-core', 'busybox-static', 'dnsmasq', 'dropbear-bin',
    'iproute2', 'kmod', 'procps', 'pxelinux', 'syslinux-common', 'nfs-kernel-server', 'wget',
  ],
  // Documentation and translations make the CD bigger and the build slower, and nobody reads
  // them on a cluster node; copyright files stay.
  pathExclude: ['/usr/share/man/*', '/usr/share/doc/*', '/usr/share/locale/*', '/usr/share/info/*'],
  pathInclude: ['/usr/share/doc/*/copyright'],
  compression: ['zstd', 10] as [string, number],
};

export interface BaseInfo {
  layout: 'knoppix';
  kernelVersion: string;
  /** Files of the base, relative to the stage folder. */
  kernel: string;
  root: string;
  rootMd5: string;
  packages: string[];
  source: string;
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

function mirrors(mirror: string, suite: string): string[] {
  const security = mirror.replace(/\/debian\/?$/, '/debian-security');
  return [
    `deb ${mirror} ${suite} main`,
    `deb ${mirror} ${suite}-updates main`,
    ...(security !== mirror ? [`deb ${security} ${suite}-security main`] : []),
  ];
}

/** Parses dpkg's status file into "name version" lines for the manifest. */
function installedPackages(status: string): string[] {
  return status.split('\n\n').flatMap((stanza) => {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1];
    const version = /^Version: (.+)$/m.exec(stanza)?.[1];
    return name && version && /^Status: .* installed$/m.test(stanza) ? [`${name} ${version}`] : [];
  }).sort();
}

export const base: Stage<BuildOptions> = {
  name: 'base',
  summary: 'the base system: Debian 12 via mmdebstrap (cached by its package set), or --base ISO',
  after: [],
  tools: ['mmdebstrap', 'mksquashfs', 'dpkg-deb', 'xorriso'],
  inputs: (o) => ({
    files: [fileURLToPath(import.meta.url), fileURLToPath(new URL('../iso/squashfs.ts', import.meta.url))],
    params: o.base ? { iso: o.base } : { ...defaultBase, mirror: o.mirror },
  }),
  async run(ctx) {
    if (ctx.options.base) {
      const found = await describeBaseIso(ctx.options.base);
      throw new UserError(`--base ${ctx.options.base}: ${found}; remastering a given ISO is not implemented yet, build without --base to use the default Debian base`);
    }
    const root = join(ctx.out, 'root');
    const deb = await initramfsStandIn(join(ctx.out, 'standin'), ctx.epoch);
    ctx.log(`mmdebstrap ${defaultBase.suite} (${defaultBase.packages.length} packages and their dependencies)`);
    await run('mmdebstrap', [
      '--mode=auto', `--variant=${defaultBase.variant}`, '--format=directory',
      '--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount',
      ...(existsSync('/usr/share/mmdebstrap/hooks/eatmydata') && existsSync('/usr/bin/eatmydata') ? ['--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata'] : []),
      `--include=${defaultBase.packages.join(',')}`, `--include=${deb}`,
      ...defaultBase.pathExclude.map((p) => `--dpkgopt=path-exclude=${p}`),
      ...defaultBase.pathInclude.map((p) => `--dpkgopt=path-include=${p}`),
      defaultBase.suite, root, ...mirrors(ctx.options.mirror, defaultBase.suite),
    ], { env: { SOURCE_DATE_EPOCH: String(ctx.epoch) } });
    // The builder's own name and resolver leak in otherwise, and would differ between machines.
    await writeFile(join(root, 'etc', 'hostname'), 'knoppix\n');
    await writeFile(join(root, 'etc', 'resolv.conf'), '');
    const kernels = await readdir(join(root, 'lib', 'modules'));
    if (kernels.length !== 1) throw new Error(`base: expected one kernel in /lib/modules, found ${kernels.join(', ') || 'none'}`);
    const kver = kernels[0];
    await copyFile(join(root, 'boot', `vmlinuz-${kver}`), join(ctx.out, 'linux'));
    const packages = installedPackages(await readFile(join(root, 'var', 'lib', 'dpkg', 'status'), 'utf8'));
    ctx.log(`squashfs of the root (kernel ${kver}, ${packages.length} packages)`);
    await makeSquashfs(root, join(ctx.out, 'KNOPPIX'), { epoch: ctx.epoch, compression: defaultBase.compression });
    await rm(root, { recursive: true, force: true });
    await rm(join(ctx.out, 'standin'), { recursive: true, force: true });
    const info: BaseInfo = {
      layout: 'knoppix', kernelVersion: kver, kernel: 'linux', root: 'KNOPPIX',
      rootMd5: await fileDigest(join(ctx.out, 'KNOPPIX'), 'md5'), packages,
      source: `debian ${defaultBase.suite} ${defaultBase.variant} via mmdebstrap from ${ctx.options.mirror}`,
    };
    await writeFile(join(ctx.out, 'base.json'), `${JSON.stringify(info, null, 2)}\n`);
  },
};
