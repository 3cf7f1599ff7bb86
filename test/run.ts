#!/usr/bin/env tsx
// Runs each test file in its own process, in order (the build before the boots that use it),
// and ends with one plain "N passed, N failed" line. `npm test -- NAME` runs the files matching NAME.
// Two things run beside the others, on this 2-core host's idle core: the remaster fixtures are
// made while the files before remaster.test run, and two files that boot one VM at a time run
// side by side (BESIDE).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.ts';
import { fixturesDir } from './fixtures.ts';

const files = [
  'host.test.ts', 'site.test.ts', 'formats.test.ts', 'runner.test.ts', 'timeline.test.ts', 'scripts.test.ts', 'inject.test.ts',
  'build.test.ts', 'modules.test.ts', 'kmod-index.test.ts', 'kernel.test.ts', 'boot.test.ts', 'cluster.test.ts', 'remaster.test.ts', 'netboot.test.ts', 'repro.test.ts',
];
/**
 * Two files that each run one VM at a time run side by side: this host has 2 cores, and a TCG
 * guest keeps one busy. Never beside a multi-node cluster, whose heartbeats are timed, nor beside
 * a build, which takes both cores (repro.test beside cluster.test took as long as the two in turn).
 */
const BESIDE: Record<string, string> = { 'cluster.test.ts': 'boot.test.ts' };
const only = process.argv.slice(2);
const chosen = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
let passed = 0;
let failed = 0;
const durations: string[] = [];
/** Tests that took a minute or more (a file's first test counts its set-up too). */
const slow: string[] = [];
/** Each failed test's name and the first lines of what it said: CI shows the end of the output. */
const failures: string[] = [];
const runStarted = performance.now();
const minutes = (ms: number) => `${(ms / 60000).toFixed(1).padStart(6)} min`;

/** A file's test names in declaration order, which is the order uvu runs them in. */
function testNames(file: string): string[] {
  const source = readFileSync(join(projectRoot, 'test', file), 'utf8');
  return [...source.matchAll(/^test\(\s*(['"])((?:\\.|(?!\1).)*)\1/gm)].map((m) => m[2].replace(/\\(.)/g, '$1'));
}
/** uvu's report of each failed test (FAIL "name", then the message), cut before the stack. */
function failureDigests(file: string, clean: string, outsideTests: boolean): string[] {
  const lines = clean.split('\n');
  const digests: string[] = [];
  lines.forEach((line, i) => {
    const m = /^\s*FAIL\s+"(.*)"\s*$/.exec(line);
    if (!m) return;
    const said: string[] = [];
    for (const next of lines.slice(i + 1)) {
      if (/^\s+at /.test(next) || /^\s*FAIL\s+"/.test(next) || said.length === 40) break;
      // uvu shows an assertion's message twice (as said, then in its report): once is enough.
      const shown = `    ${next.trim().slice(0, 160)}`;
      if (next.trim() && !said.includes(shown)) said.push(shown);
    }
    digests.push(`  ${file} › ${m[1]}`, ...said);
  });
  if (outsideTests) digests.push(`  ${file} › (outside any test)`, ...lines.filter((l) => l.trim()).slice(-8).map((l) => `    ${l.trim().slice(0, 200)}`));
  return digests;
}

/** What a test file's run gave: its output, exit code and when it began and ended. */
interface FileRun { file: string; out: string; code: number; started: number; ended: number }

/**
 * Runs one test file. Shown: its output goes to ours as it comes; else it is kept and printed
 * with the file's report when it ends (a file run beside another).
 */
function runFile(file: string, shown: boolean): Promise<FileRun> {
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'test', file)], { stdio: ['ignore', 'pipe', shown ? 'inherit' : 'pipe'] });
  let out = '';
  // uvu prints a mark as each test ends: when each ended gives what each took.
  const names = testNames(file);
  let marks = 0;
  let last = started;
  // Decoded as text so a mark split between two chunks still counts.
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    out += chunk;
    if (shown) process.stdout.write(chunk);
    for (const _ of chunk.matchAll(/[•✘]/g)) {
      const now = performance.now();
      if (now - last >= 60000) slow.push(`${minutes(now - last)}  ${file} › ${marks === 0 ? '(set-up) ' : ''}${names[marks] ?? `test ${marks + 1}`}`);
      last = now;
      marks++;
    }
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => { out += chunk; });
  return new Promise((resolve) => child.on('close', (c) => resolve({ file, out, code: c ?? 1, started, ended: performance.now() })));
}

function report(run: FileRun, beside?: string): void {
  const clean = run.out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(clean)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(clean)?.[1] ?? 0);
  passed += ok;
  failed += total - ok;
  if (run.code !== 0 && total === ok) failed += 1; // the file itself failed outside a test
  failures.push(...failureDigests(run.file, clean, run.code !== 0 && total === ok));
  durations.push(`${minutes(run.ended - run.started)}  ${run.file}${beside ? ` (beside ${beside})` : ''}${run.code !== 0 ? ' (failed)' : ''}`);
}

/**
 * Makes the remaster fixtures (test/prepare-fixtures.ts) in the background, its output in a log
 * file. Resolves, when it has ended, to what to say of it (nothing when they were there). A
 * failure is remaster.test's to report: it makes what is missing itself.
 */
async function prepareFixtures(): Promise<string> {
  await mkdir(fixturesDir, { recursive: true });
  const log = join(fixturesDir, 'prepare.log');
  const started = performance.now();
  const handle = await open(log, 'w');
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'test', 'prepare-fixtures.ts')], { stdio: ['ignore', handle.fd, handle.fd] });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  await handle.close();
  const text = await readFile(log, 'utf8');
  if (!text.trim()) return '';
  if (code === 0) return `fixtures: made beside the files before this one in ${minutes(performance.now() - started).trim()} (log: ${log})`;
  return `fixtures: making them beside the files before failed (exit ${code}); remaster.test tries again. The end of ${log}:\n${text.trim().split('\n').slice(-15).join('\n')}`;
}

// The remaster fixtures (two live CDs made with mmdebstrap and live-build: minutes of waiting on
// the mirror and dpkg) are made beside the files before remaster.test, which waits for them.
const fixtures = chosen.includes('remaster.test.ts') && chosen[0] !== 'remaster.test.ts' ? prepareFixtures() : undefined;

for (const file of chosen) {
  if (BESIDE[file] && chosen.includes(BESIDE[file])) continue; // runs with its partner
  const besideIt = chosen.find((f) => BESIDE[f] === file);
  console.log(`\n# ${file}`);
  if (file === 'remaster.test.ts' && fixtures) {
    const said = await fixtures;
    if (said) console.log(said);
  }
  const partner = besideIt ? runFile(besideIt, false) : undefined;
  report(await runFile(file, true));
  if (partner) {
    const run = await partner;
    console.log(`\n# ${besideIt} (run beside ${file})`);
    process.stdout.write(run.out);
    report(run, file);
  }
}
if (failures.length) console.log(`\n# failures (the first lines of each)\n${failures.join('\n')}`);
console.log(`\n# tests of a minute or more\n${slow.join('\n') || '(none)'}`);
console.log(`\n# durations\n${durations.join('\n')}\n${minutes(performance.now() - runStarted)}  in all`);
// Last, a line each: CI shows the head and the tail of a long output, and cuts the middle.
const failedLines = failures.flatMap((line, i) => (line.startsWith('  ') && !line.startsWith('    ') ? [failures[i + 1]?.startsWith('    ') ? `${line}: ${failures[i + 1].trim().slice(0, 140)}` : line] : []));
if (failedLines.length) console.log(`\n# failed\n${failedLines.join('\n')}`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
