import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import { projectRoot } from '../lib/paths.ts';
import { copyExtent, imageFormat, isoExtents, readExtent, type IsoExtent } from '../iso/layout.ts';
import { extractCloop } from '../iso/cloop.ts';

/**
 * The file's set-up (uvu's test.before), whose failure is reported like a test's: uvu itself
 * swallows an error thrown in a before hook, and the file's tests then fail without a word.
 */
export function setUp(fn: () => Promise<void>): void {
  test.before(async () => {
    try {
      await fn();
    } catch (err) {
      // uvu's own FAIL line, which test/run.ts digests for CI's report.
      console.log(`\n   FAIL  "(set-up)"\n    ${err instanceof Error ? err.message : String(err)}\n`);
      throw err;
    }
  });
}

export interface CliResult { code: number; stdout: string; stderr: string }

/** Runs build.ts as a user would (through tsx), with extra environment. */
export function buildCli(args: string[], env: Record<string, string> = {}, cwd = projectRoot, onSpawn?: (pid: number) => void): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(cwd, 'build.ts'), ...args], {
      cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    if (child.pid !== undefined) onSpawn?.(child.pid);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal === 'SIGINT' ? 130 : 1), stdout, stderr }));
  });
}

/** Names in a folder that look like partial output: temporaries of ours or xorriso's. */
export async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /tmp/.test(n));
}

const scratchDirs: string[] = [];
process.on('exit', () => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system's temporary folder, removed when the test file's process ends, passed or failed. */
export async function scratch(prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}

/** Lines of one listing that the other lacks, a few of each side. */
function listingDiff(what: string, a: string[], b: string[], shown = 6): string[] {
  const inB = new Set(b);
  const inA = new Set(a);
  const onlyA = a.filter((l) => !inB.has(l));
  const onlyB = b.filter((l) => !inA.has(l));
  if (!onlyA.length && !onlyB.length) return [];
  return [`${what}:`, ...onlyA.slice(0, shown).map((l) => `  - ${l}`), ...onlyB.slice(0, shown).map((l) => `  + ${l}`)];
}

/** The listing (modes, owners, sizes, times, names) of a squashfs image in an ISO, through a cloop wrapper. */
async function imageListing(iso: string, e: IsoExtent, scratch: string, name: string): Promise<string[] | undefined> {
  const format = await imageFormat(iso, e.offset);
  if (format !== 'squashfs' && format !== 'cloop') return undefined;
  let file = join(scratch, name);
  await copyExtent(iso, e, file);
  if (format === 'cloop') {
    if (!(await extractCloop(file, `${file}.inner`).then(() => true, () => false))) return undefined;
    file = `${file}.inner`;
    if (await imageFormat(file) !== 'squashfs') return undefined;
  }
  return execFileSync('unsquashfs', ['-lln', '-d', '', file], { encoding: 'utf8', maxBuffer: 256 << 20 }).split('\n').filter((l) => /^[-dlcbps]/.test(l));
}

/**
 * What differs between two ISOs that should be the same: the ISO's own listing (modes, owners,
 * dates), the files whose data differ, and inside a differing squashfs (or cloop) layer, its
 * listing. What a failed reproducibility check reports, so a run elsewhere says why.
 */
export async function isoDifferences(a: string, b: string): Promise<string> {
  const lsdl = (iso: string) => execFileSync('xorriso', ['-indev', iso, '-find', '/', '-exec', 'lsdl', '--'], { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'] })
    .split('\n').filter((l) => /^[-dlcb][rwxsStT-]{9}/.test(l));
  const out = listingDiff('ISO listing', lsdl(a), lsdl(b));
  const [ea, eb] = [await isoExtents(a, ''), await isoExtents(b, '')];
  const scratch = await mkdtemp(join(tmpdir(), 'iso-diff-'));
  try {
    for (const x of ea) {
      const y = eb.find((e) => e.path === x.path);
      if (!y) continue;
      const [da, db] = [await readExtent(a, x), await readExtent(b, y)];
      if (da.equals(db)) continue;
      out.push(`data differ: ${x.path} (${x.size} and ${y.size} bytes; sha256 ${createHash('sha256').update(da).digest('hex').slice(0, 12)} and ${createHash('sha256').update(db).digest('hex').slice(0, 12)})`);
      if (x.size > 1 << 30) continue;
      const [la, lb] = [await imageListing(a, x, scratch, 'a'), await imageListing(b, y, scratch, 'b')];
      if (la && lb) out.push(...listingDiff(`  inside ${x.path}`, la, lb));
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return out.join('\n') || '(no difference found in listings or file data: the ISO structure differs)';
}
