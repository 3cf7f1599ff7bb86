import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { UserError } from '../lib/errors.ts';
import { output, run } from '../lib/exec.ts';
import { hostFile } from '../lib/host.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { mirrors } from './01-base.ts';
import { extractRoot } from '../iso/rootfs.ts';
import { readBaseInfo, writePackagesInfo } from './handoff.ts';
import { userlandPackages } from './userland.ts';

/** Names dpkg's status file has installed, and the names those packages provide. */
export function installedNames(status: string): Set<string> {
  const names = new Set<string>();
  for (const stanza of status.split(/\n\n+/)) {
    if (!/^Status: .* installed$/m.test(stanza)) continue;
    const name = /^Package: (\S+)/m.exec(stanza)?.[1];
    if (name) names.add(name);
    for (const p of (/^Provides: (.+)$/m.exec(stanza)?.[1] ?? '').split(',')) {
      const provided = p.trim().split(/[\s(]/)[0];
      if (provided) names.add(provided);
    }
  }
  return names;
}

/** What dpkg and apt leave behind that the image must not carry (logs, backups, caches). */
const leftovers = [
  'boot', 'tmp', 'run', 'usr/sbin/policy-rc.d', 'var/cache/openssi-debs', 'var/cache/apt', 'var/cache/ldconfig/aux-cache',
  'var/log/dpkg.log', 'var/log/alternatives.log', 'var/log/apt', 'var/lib/dpkg/status-old', 'var/lib/dpkg/diversions-old',
  'var/lib/dpkg/statoverride-old', 'var/cache/debconf/config.dat-old', 'var/cache/debconf/templates.dat-old',
  'var/cache/debconf/passwords.dat-old', 'etc/passwd-', 'etc/group-', 'etc/shadow-', 'etc/gshadow-', 'etc/.pwd.lock',
];

/**
 * For a remaster: the Debian packages the OpenSSI userland runs that the user's base lacks,
 * installed over its root as Debian installs them. apt on the host resolves them against the
 * base's own package database (from the mirror of the base's release); the base's dpkg installs
 * them in a chroot of its root under a scratch overlay, maintainer scripts and all; what the
 * overlay caught goes into the OpenSSI layer. The default base got them from mmdebstrap.
 */
export const packages = {
  name: 'packages',
  module: import.meta.url,
  summary: "for a remaster: the Debian packages the userland runs that the base lacks (apt, dpkg in a chroot)",
  after: ['base', 'unpack'],
  tools: ['apt-get', 'mount', 'umount', 'chroot'],
  hostFiles: ['debianKeyring'],
  // Keyed by what the install reads from the base (unpack's facts/: its package database,
  // release, accounts, debconf answers), not by the base's key: another ISO of the same release
  // with the same packages (a bigger KNOPPIX, a respin) reuses the result.
  keyedByInputs: true,
  inputs: (o: BuildOptions, upstream) => ({ files: o.base ? [join(upstream('unpack'), 'facts')] : [], params: { packages: userlandPackages, mirror: o.base ? o.mirror : null } }),
  async run(ctx) {
    const baseDir = ctx.from('base');
    const info = await readBaseInfo(baseDir);
    const tree = join(ctx.out, 'tree');
    await mkdir(tree, { recursive: true });
    if (!info.remaster) {
      await writePackagesInfo(ctx.out, { added: [], whiteouts: [] });
      return;
    }
    const what = `--base ${info.remaster.iso}`;
    // unpack took the base's package database and os-release out of its root.
    const unpacked = join(ctx.from('unpack'), 'facts');
    const statusFile = join(unpacked, 'var', 'lib', 'dpkg', 'status');
    const status = existsSync(statusFile) ? await readFile(statusFile, 'utf8') : undefined;
    const have = installedNames(status ?? '');
    const missing = userlandPackages.filter((alternatives) => !alternatives.some((p) => have.has(p))).map((a) => a[0]);
    if (missing.length === 0) {
      ctx.log('the base has every package the OpenSSI userland runs');
      await writePackagesInfo(ctx.out, { added: [], whiteouts: [] });
      return;
    }
    if (!status) throw new UserError(`${what}: not a Debian system (no /var/lib/dpkg/status), so the OpenSSI userland's ${missing.join(', ')} cannot be added to it`);
    const osRelease = ['etc/os-release', 'usr/lib/os-release'].map((p) => join(unpacked, p)).find((p) => existsSync(p));
    const codename = osRelease ? /^VERSION_CODENAME="?([a-z]+)"?$/m.exec(await readFile(osRelease, 'utf8'))?.[1] : undefined;
    if (!codename) throw new UserError(`${what}: its os-release names no Debian release (VERSION_CODENAME), so the OpenSSI userland's ${missing.join(', ')} cannot be added to it`);
    if (process.getuid?.() !== 0) throw new UserError(`${what}: lacks ${missing.join(', ')}; installing them into its root (mount, chroot) needs root: run the build as root`);
    ctx.log(`the base (Debian ${codename}) lacks ${missing.join(', ')}: installing them from ${ctx.options.mirror}`);
    const mnt = join(ctx.out, 'mnt');
    const lower = join(mnt, 'lower');
    const root = join(mnt, 'root');
    const mounted: string[] = [];
    const mount = async (args: string[], at: string) => {
      await mkdir(at, { recursive: true });
      await run('mount', [...args, at]).catch((error) => {
        const why = String(error?.stderr ?? error?.message).trim().split('\n').filter(Boolean)[0];
        throw new UserError(`${what}: lacks ${missing.join(', ')}, and installing them needs mounts this host refused: ${why}`);
      });
      mounted.push(at);
    };
    try {
      // A squashfs root is mounted where it lies; an ISO 9660 one (KNOPPIX's cloop inside) is
      // unpacked, as hosts (containers) often lack the iso9660 driver.
      const image = { ...info.rootImage, file: resolve(baseDir, info.rootImage.file) };
      if (image.format === 'squashfs') await mount(['-t', 'squashfs', '-o', `ro,loop,offset=${image.offset}`, image.file], lower);
      else await extractRoot(image, lower);

      // apt on the host, with the base's package database as its own: it picks exactly what the
      // base lacks, in versions of the base's release, from the release's own mirror.
      const apt = join(ctx.out, 'apt');
      for (const d of ['lists/partial', 'state', 'cache', 'sources.list.d', 'preferences.d']) await mkdir(join(apt, d), { recursive: true });
      const keyring = hostFile('debianKeyring');
      await writeFile(join(apt, 'sources.list'), `${mirrors(ctx.options.mirror, codename).map((l) => l.replace(/^deb /, `deb [signed-by=${keyring}] `)).join('\n')}\n`);
      const aptOptions = [
        `Dir::State=${join(apt, 'state')}`, `Dir::State::Lists=${join(apt, 'lists')}`, `Dir::Cache=${join(apt, 'cache')}`,
        `Dir::Etc::SourceList=${join(apt, 'sources.list')}`, `Dir::Etc::SourceParts=${join(apt, 'sources.list.d')}`,
        `Dir::Etc::Preferences=${join(apt, 'preferences')}`, `Dir::Etc::PreferencesParts=${join(apt, 'preferences.d')}`,
        'APT::Architecture=amd64', 'APT::Architectures=amd64', 'APT::Install-Recommends=false', 'Debug::NoLocking=true', 'Acquire::Languages=none',
      ].flatMap((o) => ['-o', o]);
      // The install goes into the base's root under a scratch overlay that catches every change;
      // apt orders it (Pre-Depends first) and runs the base's own dpkg chrooted there.
      const upper = join(ctx.out, 'upper');
      await mkdir(upper);
      await mkdir(join(ctx.out, 'overlay-work'));
      await mount(['-t', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${join(ctx.out, 'overlay-work')}`, 'overlay'], root);
      await mount(['-t', 'proc', 'proc'], join(root, 'proc'));
      await mount(['--bind', '/dev'], join(root, 'dev'));
      const archives = join(root, 'var', 'cache', 'openssi-debs');
      await mkdir(join(archives, 'partial'), { recursive: true });
      // No service starts in the chroot (Debian's policy-rc.d convention).
      await writeFile(join(root, 'usr', 'sbin', 'policy-rc.d'), '#!/bin/sh\nexit 101\n');
      await chmod(join(root, 'usr', 'sbin', 'policy-rc.d'), 0o755);
      const aptGet = (args: string[]) => run('apt-get', ['-q', ...aptOptions, '-o', `Dir::State::status=${join(root, 'var', 'lib', 'dpkg', 'status')}`,
        '-o', `Dir::Cache::archives=${archives}`, '-o', `DPkg::Chroot-Directory=${root}`, '-o', 'DPkg::Options::=--force-confold', ...args], {
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', DEBIAN_FRONTEND: 'noninteractive', DEBCONF_NONINTERACTIVE_SEEN: 'true', SOURCE_DATE_EPOCH: String(ctx.epoch) },
      }).catch((error) => {
        const text = String(error?.stderr ?? error?.message);
        const why = text.split('\n').map((l) => l.trim()).filter((l) => /^E:|error/i.test(l)).slice(0, 3).join('; ') || text.trim().split('\n').pop();
        throw new UserError(`${what}: cannot add ${missing.join(', ')} (Debian ${codename}, ${ctx.options.mirror}): ${why}`);
      });
      await aptGet(['update']);
      await aptGet(['install', '-y', ...missing]);
      const debs = (await readdir(archives)).filter((f) => f.endsWith('.deb')).sort();
      const added = debs.map((d) => decodeURIComponent(d.replace(/\.deb$/, '')).split('_').slice(0, 2).join(' '));
      while (mounted.length) await run('umount', [mounted.pop()!]);

      // What stays: the packages' files and the system files they changed; not dpkg's logs and
      // backups. Whiteouts (files the scripts removed) become the layer's hidden paths.
      for (const p of leftovers) await rm(join(upper, p), { recursive: true, force: true });
      const whiteouts: string[] = [];
      for (const line of (await output('find', [upper, '-type', 'c'])).split('\n').filter(Boolean)) {
        if ((await lstat(line)).rdev !== 0) continue;
        whiteouts.push(line.slice(upper.length));
        await rm(line);
      }
      await rm(tree, { recursive: true });
      await rename(upper, tree);
      ctx.log(`${debs.length} packages added`);
      await writePackagesInfo(ctx.out, { added, whiteouts });
    } finally {
      while (mounted.length) {
        const at = mounted.pop()!;
        await run('umount', [at]).catch(() => run('umount', ['-l', at]).catch(() => {}));
      }
      await rm(join(ctx.out, 'apt'), { recursive: true, force: true });
      await rm(join(ctx.out, 'overlay-work'), { recursive: true, force: true });
      await rm(join(ctx.out, 'upper'), { recursive: true, force: true });
      await rm(mnt, { recursive: true, force: true }); // only once nothing is mounted below it
    }
  },
} satisfies Stage<BuildOptions>;
