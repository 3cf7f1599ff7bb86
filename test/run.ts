#!/usr/bin/env tsx
// Runs each test file in its own process, in order (the build before the boots that use it),
// and ends with one plain "N passed, N failed" line. `npm test -- NAME` runs the files matching NAME.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.ts';

const files = [
  'host.test.ts', 'site.test.ts', 'formats.test.ts', 'runner.test.ts', 'scripts.test.ts',
  'build.test.ts', 'modules.test.ts', 'kmod-index.test.ts', 'kernel.test.ts', 'boot.test.ts', 'remaster.test.ts', 'cluster.test.ts', 'netboot.test.ts', 'repro.test.ts',
];
const only = process.argv.slice(2);
const chosen = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
let passed = 0;
let failed = 0;
const durations: string[] = [];
const runStarted = performance.now();
for (const file of chosen) {
  console.log(`\n# ${file}`);
  const started = performance.now();
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'test', file)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => {
    out += chunk;
    process.stdout.write(chunk);
  });
  const code: number = await new Promise((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  const clean = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(clean)?.[1] ?? 0);
  const ok = Number(/Passed:\s+(\d+)/.exec(clean)?.[1] ?? 0);
  passed += ok;
  failed += total - ok;
  if (code !== 0 && total === ok) failed += 1; // the file itself failed outside a test
  durations.push(`${((performance.now() - started) / 60000).toFixed(1).padStart(6)} min  ${file}${code !== 0 ? ' (failed)' : ''}`);
}
console.log(`\n# durations\n${durations.join('\n')}\n${((performance.now() - runStarted) / 60000).toFixed(1).padStart(6)} min  in all`);
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
