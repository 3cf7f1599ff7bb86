import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runStages, type Stage } from '../lib/runner.ts';
import { scratch } from './helpers.ts';

interface Opts { input: string; failSecond?: boolean }
const calls: string[] = [];

const first: Stage<Opts> = {
  name: 'first', summary: 'copies its input', after: [], tools: ['cp'],
  inputs: (o) => ({ files: [o.input] }),
  async run(ctx) {
    calls.push('first');
    await writeFile(join(ctx.out, 'value'), await readFile(ctx.options.input));
  },
};
const second: Stage<Opts> = {
  name: 'second', summary: 'reads the first', after: ['first'], tools: [],
  inputs: (o) => ({ files: [], params: { failSecond: Boolean(o.failSecond) } }),
  async run(ctx) {
    calls.push('second');
    await writeFile(join(ctx.out, 'partial'), 'half done');
    if (ctx.options.failSecond) throw new Error('second failed');
    const v = await readFile(join(ctx.from('first'), 'value'), 'utf8');
    await writeFile(join(ctx.out, 'value'), `${v}!`);
  },
};

const quiet = { print: () => {} };

test('a stage reruns only when its inputs or an upstream stage change', async () => {
  const cache = await scratch('cache-');
  const input = join(await scratch('input-'), 'input');
  await writeFile(input, 'a');
  calls.length = 0;
  const r1 = await runStages([first, second], { input }, { cacheDir: cache, ...quiet });
  assert.equal(calls, ['first', 'second']);
  assert.is(await readFile(join(r1.get('second')!.dir, 'value'), 'utf8'), 'a!');
  calls.length = 0;
  const r2 = await runStages([first, second], { input }, { cacheDir: cache, ...quiet });
  assert.equal(calls, []);
  assert.ok(r2.get('first')!.cached && r2.get('second')!.cached);
  await writeFile(input, 'b');
  calls.length = 0;
  const r3 = await runStages([first, second], { input }, { cacheDir: cache, ...quiet });
  assert.equal(calls, ['first', 'second']);
  assert.is(await readFile(join(r3.get('second')!.dir, 'value'), 'utf8'), 'b!');
  calls.length = 0;
  await runStages([first, second], { input }, { cacheDir: cache, noCache: true, ...quiet });
  assert.equal(calls, ['first', 'second'], '--no-cache reruns everything');
});

test('pruning keeps what the build used and the two most recently used others of each stage', async () => {
  const cache = await scratch('cache-');
  const input = join(await scratch('input-'), 'input');
  const keys: string[][] = [];
  // The key holds the newest input's time: the same value written again must give the same key.
  const write = async (value: string) => {
    await writeFile(input, value);
    await utimes(input, 1e9, 1e9);
  };
  for (const value of ['a', 'b', 'c', 'd', 'e']) {
    await write(value);
    const r = await runStages([first, second], { input }, { cacheDir: cache, prune: true, ...quiet });
    keys.push([r.get('first')!.key, r.get('second')!.key]);
    // Pruned while the last stage ran: what it read from the first is still there.
    assert.is(await readFile(join(r.get('second')!.dir, 'value'), 'utf8'), `${value}!`);
    await new Promise((resolve) => setTimeout(resolve, 20)); // distinct "last used" times
  }
  for (const [i, name] of ['first', 'second'].entries()) {
    assert.equal((await readdir(join(cache, 'stages', name))).sort(), keys.slice(2).map((k) => k[i]).sort(), name);
  }
  // Reusing an old entry marks it used: it outlives newer ones.
  await write('c');
  assert.ok((await runStages([first, second], { input }, { cacheDir: cache, prune: true, ...quiet })).get('first')!.cached);
  await write('f');
  const r = await runStages([first, second], { input }, { cacheDir: cache, prune: true, ...quiet });
  assert.equal((await readdir(join(cache, 'stages', 'first'))).sort(), [keys[2][0], keys[4][0], r.get('first')!.key].sort());
});

test('a failing stage leaves no output and no temporary behind', async () => {
  const cache = await scratch('cache-');
  const input = join(cache, 'in');
  await writeFile(input, 'a');
  try {
    await runStages([first, second], { input, failSecond: true }, { cacheDir: cache, ...quiet });
    assert.unreachable('the failure was swallowed');
  } catch (error: any) {
    assert.is(error.message, 'second failed');
  }
  assert.equal(await readdir(join(cache, 'stages', 'second')), []);
  assert.is((await readdir(join(cache, 'stages', 'first'))).length, 1, 'the first stage stays cached');
  calls.length = 0;
  await runStages([first, second], { input }, { cacheDir: cache, ...quiet });
  assert.equal(calls, ['second']);
});

test('a missing host tool stops the build before any stage, naming it', async () => {
  const cache = await scratch('cache-');
  const needy: Stage<Opts> = { ...first, tools: ['mksquashfs', 'no-such-tool-xyz'] };
  try {
    await runStages([needy], { input: '/etc/hostname' }, { cacheDir: cache, ...quiet });
    assert.unreachable('ran without the tool');
  } catch (error: any) {
    assert.match(error.message, /^missing host tools: no-such-tool-xyz;/);
  }
  assert.not.ok(existsSync(join(cache, 'stages')));
});

test.run();
