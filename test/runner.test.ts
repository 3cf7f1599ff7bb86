import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { inputsEpoch, repoFacts } from '../lib/epoch.ts';
import { execFileSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runStages, type Stage } from '../lib/runner.ts';
import { moduleSources, sourcesDigest } from '../lib/sources.ts';
import { projectRoot } from '../lib/paths.ts';
import { stages } from '../stages/index.ts';
import { scratch } from './helpers.ts';

interface Opts { input: string; failSecond?: boolean }
const calls: string[] = [];

const first: Stage<Opts> = {
  name: 'first', module: import.meta.url, summary: 'copies its input', after: [], tools: ['cp'],
  inputs: (o) => ({ files: [o.input] }),
  async run(ctx) {
    calls.push('first');
    await writeFile(join(ctx.out, 'value'), await readFile(ctx.options.input));
  },
};
const second: Stage<Opts> = {
  name: 'second', module: import.meta.url, summary: 'reads the first', after: ['first'], tools: [],
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

test('a stage keyed by its inputs skips a new upstream key, but not one of a stage keyed by its inputs too', async () => {
  // base stands for the user's ISO (its key changes with every new file); kernel for what a
  // stage reads of it (keyed by that); layer reads kernel's output and is keyed by its inputs.
  const dir = await scratch('keyed-');
  const made: string[] = [];
  const base: Stage<Opts> = {
    name: 'base', module: import.meta.url, summary: 'the base', after: [], tools: [],
    inputs: (o) => ({ files: [o.input] }),
    async run(ctx) { made.push('base'); await writeFile(join(ctx.out, 'kver'), (await readFile(ctx.options.input, 'utf8')).split(' ')[0]); },
  };
  const kernel: Stage<Opts> = {
    name: 'kernel', module: import.meta.url, summary: 'what is read of the base', after: ['base'], tools: [], keyedByInputs: true,
    inputs: (_o, upstream) => ({ files: [join(upstream('base'), 'kver')] }),
    async run(ctx) { made.push('kernel'); await writeFile(join(ctx.out, 'ko'), `module for ${await readFile(join(ctx.from('base'), 'kver'), 'utf8')}`); },
  };
  const layer: Stage<Opts> = {
    name: 'layer', module: import.meta.url, summary: 'reads the kernel stage', after: ['kernel'], tools: [], keyedByInputs: true,
    inputs: () => ({ files: [] }),
    async run(ctx) { made.push('layer'); await writeFile(join(ctx.out, 'layer'), await readFile(join(ctx.from('kernel'), 'ko'))); },
  };
  const input = join(dir, 'iso');
  const build = async (text: string) => {
    await writeFile(input, text);
    made.length = 0;
    const r = await runStages([base, kernel, layer], { input }, { cacheDir: join(dir, 'cache'), ...quiet });
    return readFile(join(r.get('layer')!.dir, 'layer'), 'utf8');
  };
  assert.is(await build('6.1 first'), 'module for 6.1');
  assert.equal(made, ['base', 'kernel', 'layer']);
  assert.is(await build('6.1 another ISO, same kernel'), 'module for 6.1');
  assert.equal(made, ['base'], 'another base with that kernel: both reused');
  assert.is(await build('6.5 a newer kernel'), 'module for 6.5', 'a stage keyed by inputs upstream counts by its key');
  assert.equal(made, ['base', 'kernel', 'layer']);
});

test('a stage reruns when an input file\'s mode changes, not only its executable bit', async () => {
  const cache = await scratch('cache-');
  const input = join(await scratch('input-'), 'input');
  await writeFile(input, 'secret', { mode: 0o644 });
  calls.length = 0;
  await runStages([first], { input }, { cacheDir: cache, ...quiet });
  await chmod(input, 0o600);
  await runStages([first], { input }, { cacheDir: cache, ...quiet });
  assert.equal(calls, ['first', 'first'], 'a site file made private is a new input');
});

test('what a stage makes has the same modes whatever the caller\'s umask and the cache folder\'s set-group-ID bit', async () => {
  const maker: Stage<Opts> = {
    name: 'maker', module: import.meta.url, summary: 'makes a folder and a file', after: [], tools: [],
    inputs: () => ({ files: [] }),
    async run(ctx) {
      await mkdir(join(ctx.out, 'tree', 'etc'), { recursive: true });
      await writeFile(join(ctx.out, 'tree', 'etc', 'motd'), 'hello');
    },
  };
  const modes = async (umask: number, setgid: boolean) => {
    const cache = await scratch('cache-');
    if (setgid) await chmod(cache, 0o2775);
    const old = process.umask(umask);
    try {
      const dir = (await runStages([maker], { input: '' }, { cacheDir: cache, noCache: true, ...quiet })).get('maker')!.dir;
      return [join(dir, 'tree'), join(dir, 'tree', 'etc'), join(dir, 'tree', 'etc', 'motd')].map(async (p) => (await stat(p)).mode & 0o7777);
    } finally {
      process.umask(old);
    }
  };
  const plain = await Promise.all(await modes(0o022, false));
  assert.equal(plain, [0o755, 0o755, 0o644]);
  assert.equal(await Promise.all(await modes(0o002, true)), plain);
});

test('an input the checkout ignores (its cache) counts by its own time, as it would outside the checkout', async () => {
  const inCheckout = join(projectRoot, '.cache', `epoch-test-${process.pid}`);
  const outside = await scratch('epoch-');
  const later = Math.floor(Date.now() / 1000) + 3600; // newer than any commit
  try {
    for (const dir of [inCheckout, outside]) {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'status'), 'facts');
      await utimes(join(dir, 'status'), later, later);
    }
    const code = join(projectRoot, 'lib', 'runner.ts');
    assert.is(await inputsEpoch([inCheckout, code]), later);
    assert.is(await inputsEpoch([outside, code]), later);
  } finally {
    await rm(inCheckout, { recursive: true, force: true });
  }
});

test('a tracked input is dated by the last commit that touched it, as git log -1 says, from one look at git', async () => {
  const facts = await repoFacts();
  for (const paths of [['lib/paths.ts'], ['modules'], ['lib/paths.ts', 'modules', 'iso']]) {
    const clean = execFileSync('git', ['status', '--porcelain', '--', ...paths], { cwd: projectRoot, encoding: 'utf8' }) === '';
    if (!clean) continue; // an edited checkout: those count by their times instead
    const want = Number(execFileSync('git', ['log', '-1', '--format=%ct', '--', ...paths], { cwd: projectRoot, encoding: 'utf8' }).trim());
    assert.is(await inputsEpoch(paths.map((p) => join(projectRoot, p)), facts), want, paths.join(' '));
  }
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

test('a stage reruns when any file its code imports changes (its import graph, not a list)', async () => {
  const dir = await scratch('graph-');
  await writeFile(join(dir, 'helper.ts'), 'export const greeting = "hello";\n');
  await writeFile(join(dir, 'stage.ts'), 'import { greeting } from "./helper.ts";\nexport const used = greeting;\n');
  const cache = await scratch('cache-');
  let runs = 0;
  const stage: Stage<Record<string, never>> = {
    name: 'graph', module: join(dir, 'stage.ts'), summary: 'its code is in a temporary folder', after: [], tools: [],
    inputs: () => ({ files: [] }),
    async run() {
      runs += 1;
    },
  };
  await runStages([stage], {}, { cacheDir: cache, ...quiet });
  await runStages([stage], {}, { cacheDir: cache, ...quiet });
  assert.is(runs, 1, 'cached the second time');
  await writeFile(join(dir, 'helper.ts'), 'export const greeting = "hello again";\n');
  await runStages([stage], {}, { cacheDir: cache, ...quiet });
  assert.is(runs, 2, 'an edit of a file the stage imports makes a new key');
});

test('every file each stage and each fixture script imports is part of its key: editing any one of them changes it', async () => {
  // A copy of the code, so the edits never touch the working tree.
  const copy = await scratch('code-');
  for (const d of ['lib', 'stages', 'iso', 'fixtures']) await cp(join(projectRoot, d), join(copy, d), { recursive: true });
  await symlink(join(projectRoot, 'node_modules'), join(copy, 'node_modules'));
  let checked = 0;
  const entries = [
    ...stages.map((s) => ({ name: s.name, file: fileURLToPath(s.module) })),
    ...['knoppix', 'debian-live'].map((f) => ({ name: `fixture ${f}`, file: join(projectRoot, 'fixtures', f, 'make.ts') })),
  ];
  for (const stage of entries) {
    const module = join(copy, relative(projectRoot, stage.file));
    const { files } = await moduleSources(module);
    assert.ok(files.includes(module), `${stage.name}: its own file`);
    const before = await sourcesDigest(module);
    for (const file of files) {
      const text = await readFile(file);
      await writeFile(file, Buffer.concat([text, Buffer.from('\n// edited\n')]));
      assert.is.not(await sourcesDigest(module), before, `${stage.name}: editing ${relative(copy, file)}`);
      await writeFile(file, text);
      checked += 1;
    }
    assert.is(await sourcesDigest(module), before);
  }
  assert.ok(checked > 60, `${checked} files checked`);
  // Files the hand-made lists used to miss are in now.
  const graph = async (name: string) => (await moduleSources(stages.find((s) => s.name === name)!.module)).files.map((f) => relative(projectRoot, f));
  for (const f of ['iso/layout.ts', 'iso/kernel.ts', 'iso/cloop.ts']) assert.ok((await graph('base')).includes(f), `base imports ${f}`);
  for (const f of ['lib/clusterkey.ts', 'lib/templates.ts']) assert.ok((await graph('site')).includes(f), `site imports ${f}`);
  for (const f of ['lib/fifo.ts', 'stages/08-site.ts']) assert.ok((await graph('remaster')).includes(f), `remaster imports ${f}`);
  assert.ok((await moduleSources(stages.find((s) => s.name === 'site')!.module)).packages.ejs, 'the ejs version is in the site key');
});

test.run();
