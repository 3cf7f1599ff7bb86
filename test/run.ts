#!/usr/bin/env tsx
// Runs each test file in its own process, in order (the build before the boots that use it),
// and ends with one plain "N passed, N failed" line. `npm test -- NAME` runs the files matching NAME.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.ts';

const files = [
  'host.test.ts', 'site.test.ts', 'formats.test.ts', 'runner.test.ts', 'timeline.test.ts', 'scripts.test.ts',
  'build.test.ts', 'modules.test.ts', 'kmod-index.test.ts', 'kernel.test.ts', 'boot.test.ts', 'remaster.test.ts', 'cluster.test.ts', 'netboot.test.ts', 'repro.test.ts',
];
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

for (const file of chosen) {
  console.log(`\n# ${file}`);
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'test', file)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  // uvu prints a mark as each test ends: when each ended gives what each took.
  const names = testNames(file);
  let marks = 0;
  let last = started;
  // Decoded as text so a mark split between two chunks still counts.
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    out += chunk;
    process.stdout.write(chunk);
    for (const _ of chunk.matchAll(/[•✘]/g)) {
      const now = performance.now();
      if (now - last >= 60000) slow.push(`${minutes(now - last)}  ${file} › ${marks === 0 ? '(set-up) ' : ''}${names[marks] ?? `test ${marks + 1}`}`);
      last = now;
      marks++;
    }
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  const clean = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(clean)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(clean)?.[1] ?? 0);
  passed += ok;
  failed += total - ok;
  if (code !== 0 && total === ok) failed += 1; // the file itself failed outside a test
  failures.push(...failureDigests(file, clean, code !== 0 && total === ok));
  durations.push(`${minutes(performance.now() - started)}  ${file}${code !== 0 ? ' (failed)' : ''}`);
}
if (failures.length) console.log(`\n# failures (the first lines of each)\n${failures.join('\n')}`);
console.log(`\n# tests of a minute or more\n${slow.join('\n') || '(none)'}`);
console.log(`\n# durations\n${durations.join('\n')}\n${minutes(performance.now() - runStarted)}  in all`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
