import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.ts';
import { pathDigest, textDigest } from '../lib/hash.ts';
import { sourcesDigest } from '../lib/sources.ts';

/** Test inputs that are made or fetched, kept outside git under .cache/fixtures. */
export const fixturesDir = process.env.OPENSSI_LIVE_FIXTURES ?? join(projectRoot, '.cache', 'fixtures');

/** A Debian package from the host's configured mirror, downloaded once (apt-get download). */
export async function debianPackage(name: string): Promise<string> {
  const dir = join(fixturesDir, 'debs');
  await mkdir(dir, { recursive: true });
  const have = (await readdir(dir)).find((f) => f.startsWith(`${name}_`) && f.endsWith('.deb'));
  if (have) return join(dir, have);
  const tmp = join(dir, `.tmp-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp);
  try {
    const download = () => execFileSync('apt-get', ['download', name], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      download();
    } catch {
      // The host's package lists may be older than the mirror, which keeps only the newest
      // kernel ABI: the one the base was just built with is then unknown to them.
      execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'pipe'] });
      download();
    }
    const [file] = (await readdir(tmp)).filter((f) => f.endsWith('.deb'));
    if (!file) throw new Error(`apt-get download ${name} gave no .deb`);
    await rename(join(tmp, file), join(dir, file));
    return join(dir, file);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * A fixture ISO made by a script under fixtures/, rebuilt when the script's folder or any file
 * its code imports changes (their digest is in the file name). Returns the ISO's path.
 */
export async function fixtureIso(name: 'knoppix' | 'debian-live', args: string[] = [], label: string = name): Promise<string> {
  const dir = join(projectRoot, 'fixtures', name);
  // The script's folder and every file its code imports (lib/, iso/...): an edit to any makes a new fixture.
  const digest = textDigest(`${await pathDigest(dir, { modes: 'git' })} ${await sourcesDigest(join(dir, 'make.ts'))}`).slice(0, 12);
  const iso = join(fixturesDir, `${label}-${digest}.iso`);
  if (existsSync(iso)) return iso;
  await mkdir(fixturesDir, { recursive: true });
  console.error(`fixture: building ${iso} (once; kept in ${fixturesDir})`);
  // Not synchronous: two fixtures can be made at once (remaster.test makes both).
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(dir, 'make.ts'), iso, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`fixture ${label}: make.ts failed (${signal ?? `exit ${code}`})`))));
  });
  // Older versions of this fixture (made by an earlier script) are of no more use.
  for (const f of await readdir(fixturesDir)) {
    if (f.startsWith(`${label}-`) && f.endsWith('.iso') && join(fixturesDir, f) !== iso) await rm(join(fixturesDir, f), { force: true });
  }
  return iso;
}

/** The base CDs remaster.test remasters: a KNOPPIX with a cloop root, and a Debian live CD. */
export function remasterFixtures(): Promise<[knoppix: string, live: string]> {
  // Made at once when missing: lb build waits on the mirror and dpkg more than on the CPU.
  return Promise.all([fixtureIso('knoppix', [], 'knoppix-cloop'), fixtureIso('debian-live')]);
}
