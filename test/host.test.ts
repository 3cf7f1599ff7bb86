// Every host program and file the code uses comes from a Debian package that setup.mjs installs
// for the command that needs it: asked of dpkg, so a package installed by hand cannot hide a gap.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hostFiles, hostPrograms, requireFiles, type HostCommand } from '../lib/host.ts';
import { projectRoot } from '../lib/paths.ts';
import { scratch } from './helpers.ts';
// @ts-expect-error setup.mjs is plain JavaScript (it runs before npm install) and has no types
import { packagesFor } from '../setup.mjs';

const setupPackages = packagesFor as Record<HostCommand, string[]>;

/** The packages dpkg says own a path, trying the /usr-merged and the resolved spellings. */
function owners(path: string): string[] {
  const real = realpathSync(path);
  const spellings = [...new Set([path, real, path.replace(/^\/usr(?=\/(s?bin|lib)\/)/, ''), real.replace(/^\/usr(?=\/(s?bin|lib)\/)/, '')])];
  for (const p of spellings) {
    const r = spawnSync('dpkg-query', ['-S', p], { encoding: 'utf8' });
    const lines = r.stdout.split('\n').filter((l) => l.endsWith(`: ${p}`) && !l.startsWith('diversion by'));
    if (lines.length) return lines.flatMap((l) => l.slice(0, -(p.length + 2)).split(', '));
  }
  return [];
}

/** Where PATH finds a program, as the code's own runs find it (lib/exec.ts). */
function which(program: string): string | undefined {
  return (process.env.PATH ?? '').split(':').filter(Boolean).map((d) => join(d, program)).find((p) => existsSync(p));
}

test('setup.mjs installs, for each command, the package of every host program that command runs', () => {
  for (const [program, dep] of Object.entries(hostPrograms)) {
    const path = which(program);
    assert.ok(path, `${program} is not on this host although \`npm test\` installed ${dep.package}`);
    assert.ok(owners(path!).includes(dep.package), `${path} belongs to ${owners(path!).join(', ') || 'no package'}, not ${dep.package}`);
    assert.ok(setupPackages[dep.for].includes(dep.package), `setup.mjs ${dep.for} does not install ${dep.package} (${program})`);
  }
});

test('setup.mjs installs the package of every host file (firmware, boot loaders, iPXE)', () => {
  for (const [name, dep] of Object.entries(hostFiles)) {
    assert.ok(existsSync(dep.path), `${name}: ${dep.path} is missing`);
    assert.ok(owners(dep.path).includes(dep.package), `${dep.path} belongs to ${owners(dep.path).join(', ') || 'no package'}, not ${dep.package}`);
    assert.ok(setupPackages[dep.for].includes(dep.package), `setup.mjs ${dep.for} does not install ${dep.package} (${dep.path})`);
  }
  assert.ok(setupPackages.boot.includes('ipxe'), 'Etherboot nodes boot Debian\'s ipxe.iso');
  for (const pkg of [...setupPackages.build, ...setupPackages.boot]) assert.ok(setupPackages.test.includes(pkg), `npm test installs ${pkg}`);
});

/** The TypeScript the pipeline, the driver, the tests, the fixtures and the bench are made of. */
function sourceFiles(dir = projectRoot): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (['node_modules', '.git', '.cache', 'out', 'overlays', 'templates', 'modules'].includes(name)) return [];
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mjs)$/.test(name) ? [path] : [];
  });
}

test('the code runs no host program and reads no host file that the list does not name', () => {
  const programs = new Set<string>();
  const paths: string[] = [];
  for (const file of sourceFiles()) {
    const text = readFileSync(file, 'utf8');
    const at = relative(projectRoot, file);
    const calls = /\b(?:run|output|execFileSync|spawnSync|spawn|execa|onPath)\(\s*'([^']+)'|startTracked\([^,]+,\s*'([^']+)'/g;
    for (const m of text.matchAll(calls)) programs.add(`${m[1] ?? m[2]}\t${at}`);
    // The commands of a shell string (`sh -c '...'`): the first word of each pipeline part.
    for (const m of text.matchAll(/\('sh', \['-c', (['`])(.*?)\1/g)) {
      for (const part of m[2].split(/[|;&]+/)) {
        const word = part.trim().split(/\s+/)[0];
        if (word && !['exit', 'cd', 'echo', 'printf', 'test', '[', 'for', 'do', 'done', 'then', 'fi'].includes(word)) programs.add(`${word}\t${at}`);
      }
    }
    for (const m of text.matchAll(/\b(?:tools|requireTools\()\s*:?\s*\[([^\]]*)\]/g)) {
      for (const t of m[1].matchAll(/'([^']+)'/g)) programs.add(`${t[1]}\t${at}`);
    }
    // An absolute path in quotes that exists on this host is a host file: it must come from the
    // list (setup.mjs looks for dpkg itself, before anything is installed; this file for PATH).
    if (['setup.mjs', 'test/host.test.ts'].includes(at)) continue;
    for (const m of text.matchAll(/['"`](\/(?:usr|bin|sbin|lib|lib64|boot|opt)\/[^'"`*$\s{}]+)['"`]/g)) {
      if (existsSync(m[1])) paths.push(`${m[1]} in ${at}`);
    }
  }
  const unlisted = [...programs].filter((p) => !hostPrograms[p.split('\t')[0]] && !['npm', 'node', 'no-such-tool-xyz'].includes(p.split('\t')[0]));
  assert.equal(unlisted.map((p) => p.replace('\t', ' in ')), [], 'programs missing from lib/host-deps.json');
  assert.equal(paths, [], 'host paths written out instead of taken from lib/host-deps.json');
  assert.ok(programs.size > 30, `found ${programs.size} program uses`);
});

test('a missing host file is one line naming it and its package', () => {
  try {
    requireFiles([{ path: '/nonexistent/ipxe.iso', package: 'ipxe', for: 'boot' }]);
    assert.unreachable('a missing file passed');
  } catch (error: any) {
    assert.is(error.name, 'UserError');
    assert.is(error.message, "/nonexistent/ipxe.iso is missing: install Debian's ipxe (`npm run boot` installs it)");
  }
});

test('npm run boot without QEMU: one line, exit 1, before any VM or switch starts', async () => {
  const iso = join(projectRoot, 'package.json'); // any existing file: the check comes first
  const logs = await scratch('openssi-host-');
  for (const args of [[iso, '--firmware', 'bios', '--logs', logs], [iso, '--nodes', '3', '--logs', logs]]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(projectRoot, 'test', 'boot-cli.ts'), ...args], {
      encoding: 'utf8', env: { ...process.env, PATH: '/nonexistent' }, timeout: 60_000,
    });
    assert.is(r.status, 1, r.stderr);
    assert.is(r.stderr.trim(), 'openssi-live boot: missing host tools: qemu-system-x86_64 (Debian package qemu-system-x86), vde_switch (Debian package vde-switch); `npm run boot` installs them');
  }
  assert.equal(readdirSync(logs), [], 'no VM started: it would have left a serial log or a switch socket');
});

test.run();
