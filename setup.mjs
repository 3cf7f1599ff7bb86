#!/usr/bin/env node
// Installs what a command needs before it runs: npm dependencies, then Debian packages.
// Plain JavaScript with no dependencies, because it runs before `npm install` has.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));

// Debian packages per command, from lib/host-deps.json: every host program and file the code
// uses names its package and the first command that needs it; test needs all of them.
const deps = JSON.parse(readFileSync(join(root, 'lib', 'host-deps.json'), 'utf8'));
const packagesOf = (...commands) => [...new Set(
  [...Object.values(deps.programs), ...Object.values(deps.files)]
    .filter((d) => commands.includes(d.for)).map((d) => d.package),
)].sort();
export const packagesFor = {
  build: packagesOf('build'), boot: packagesOf('boot'),
  test: packagesOf('build', 'boot', 'test'), all: packagesOf('build', 'boot', 'test'),
};

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...opts });
  return r.status === 0;
}

function npmDependencies() {
  const lock = join(root, 'package-lock.json');
  const installed = join(root, 'node_modules', '.package-lock.json');
  if (existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs) return;
  console.error('openssi-live: installing npm dependencies (npm ci)');
  if (!run('npm', ['ci', '--no-audit', '--no-fund'])) {
    console.error('openssi-live: `npm ci` failed; see above');
    process.exit(1);
  }
}

function missingDebianPackages(names) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${db:Status-Abbrev}\n', ...names], { encoding: 'utf8' });
  const ok = new Set(
    (r.stdout || '').split('\n').filter((l) => /^\S+ ii/.test(l)).map((l) => l.split(' ')[0]),
  );
  return names.filter((n) => !ok.has(n));
}

function debianPackages(names) {
  if (!existsSync('/usr/bin/dpkg-query')) {
    console.error('openssi-live: this needs a Debian 12 (bookworm) host: dpkg-query not found');
    process.exit(1);
  }
  const missing = missingDebianPackages(names);
  if (missing.length === 0) return;
  const line = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid() !== 0) {
    console.error(`openssi-live: missing Debian packages; run as root:\n  apt-get update && ${line}`);
    process.exit(1);
  }
  console.error(`openssi-live: installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
  // An install can fail only because the package lists are stale or absent: update once, retry.
  if (!install() && !(run('apt-get', ['update'], { env }) && install())) {
    console.error(`openssi-live: apt-get could not install: ${missing.join(' ')}`);
    process.exit(1);
  }
}

// Run as a script (npm run ...), not when a test imports packagesFor.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const what = process.argv[2] || 'all';
  if (!packagesFor[what]) {
    console.error(`openssi-live: setup: unknown command '${what}' (build, boot, test, all)`);
    process.exit(2);
  }
  npmDependencies();
  debianPackages(packagesFor[what]);
}
