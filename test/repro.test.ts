import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { projectRoot } from '../lib/paths.ts';
import { buildCli, isoDifferences } from './helpers.ts';

/** A second checkout of the same sources in another folder, sharing nothing but node_modules. */
async function secondClone(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'openssi-clone-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: projectRoot, encoding: 'utf8' })
    .split('\0').filter(Boolean);
  execFileSync('git', ['clone', '--quiet', '--no-hardlinks', projectRoot, dir]);
  // Uncommitted work is part of "the same inputs" too: lay the working tree over the clone.
  for (const f of files) {
    await mkdir(dirname(join(dir, f)), { recursive: true });
    execFileSync('cp', ['-a', '--remove-destination', join(projectRoot, f), join(dir, f)]);
  }
  await symlink(join(projectRoot, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

test('two clones built with the same SOURCE_DATE_EPOCH give the same ISO, byte for byte (one from an empty cache)', async () => {
  const clone = await secondClone();
  const epoch = { SOURCE_DATE_EPOCH: '1700000000' };
  // The cluster key is a secret input: the same key file for both, or the ISOs differ by it.
  const key = join(clone, 'cluster-key');
  await writeFile(key, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  try {
    // This checkout with its own cache (what earlier tests left in it), the clone from nothing.
    const a = await buildCli(['--json', '--out', join(clone, 'a.iso'), '--cluster-key', key], epoch, projectRoot);
    assert.is(a.code, 0, a.stderr);
    const b = await buildCli(['--json', '--cache', join(clone, '.cache-b'), '--out', join(clone, 'b.iso'), '--cluster-key', key], epoch, clone);
    assert.is(b.code, 0, b.stderr);
    const ja = JSON.parse(a.stdout);
    const jb = JSON.parse(b.stdout);
    for (const s of Object.values(jb.stages) as { cached: boolean }[]) assert.not.ok(s.cached, 'the second clone built everything itself');
    if (jb.sha256 !== ja.sha256) assert.unreachable(`the ISOs differ:\n${await isoDifferences(join(clone, 'a.iso'), join(clone, 'b.iso'))}`);
    assert.is(execFileSync('sha256sum', [join(clone, 'a.iso')], { encoding: 'utf8' }).split(' ')[0], ja.sha256);
  } finally {
    await rm(clone, { recursive: true, force: true });
  }
});

test.run();
