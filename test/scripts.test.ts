import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { walk } from '../lib/hash.ts';
import { overlaysDir, projectRoot } from '../lib/paths.ts';

/** Every shell script that runs inside an image (ours and the fixtures'), and shell fragments. */
async function imageScripts(): Promise<string[]> {
  const out: string[] = [];
  const entries = [
    ...(await walk(overlaysDir)).map((e) => ({ ...e, path: join(overlaysDir, e.path) })),
    ...(await walk(join(projectRoot, 'fixtures'))).map((e) => ({ ...e, path: join(projectRoot, 'fixtures', e.path) })),
  ];
  for (const e of entries) {
    if (e.type !== 'file') continue;
    const path = e.path;
    const head = readFileSync(path, 'utf8').slice(0, 64);
    if (head.startsWith('#!/bin/sh') || /\.sh$|\/etc\/default\//.test(path)) out.push(path);
  }
  return out;
}

/** shellcheck at its strictest level for SHELL over FILES: no finding, exit 0. */
function assertShellcheckClean(shell: 'sh' | 'bash', files: string[]) {
  const r = spawnSync('shellcheck', ['-s', shell, '-S', 'style', '-f', 'gcc', ...files], { encoding: 'utf8' });
  assert.is(r.stdout + r.stderr, '', 'shellcheck findings');
  assert.is(r.status, 0);
}

test('image scripts are POSIX sh, shellcheck-clean', async () => {
  const scripts = await imageScripts();
  assert.ok(scripts.length >= 5, `found ${scripts.length} scripts`);
  assertShellcheckClean('sh', scripts);
});

test('bash start-up files of the image (bash-ll\'s) are shellcheck-clean as bash', async () => {
  const files = (await walk(overlaysDir)).filter((e) => e.type === 'file' && e.path.endsWith('.bash')).map((e) => join(overlaysDir, e.path));
  assert.ok(files.length >= 1, `found ${files.length}`);
  assertShellcheckClean('bash', files);
});

test('image scripts parse under busybox sh', async () => {
  for (const script of await imageScripts()) {
    execFileSync('busybox', ['sh', '-n', script]);
  }
});

test('scripts that run as commands start with set -eu', async () => {
  for (const script of await imageScripts()) {
    const text = readFileSync(script, 'utf8');
    if (!text.startsWith('#!/bin/sh')) continue;
    // An initramfs init must never exit (it is PID 1): it uses set -u and handles each failure.
    const wanted = /\/init$/.test(script) ? /^set -u$/m : /^set -eu$/m;
    assert.match(text, wanted, script);
  }
});

test.run();
