// The module indexes the modules stage writes without depmod, checked against depmod itself on
// the default CD's kernel: its whole modules tree, with and without modules added.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addModules, binIndexNames, IndexWriter, moduleFacts, readIndex, textIndexNames, type BinIndexes, type TextIndexes } from '../iso/kmod-index.ts';
import { moduleName } from '../iso/modules.ts';
import { defaultOutPath } from '../lib/paths.ts';
import type { BuildOptions } from '../lib/options.ts';
import { runStages, type Stage } from '../lib/runner.ts';
import { hostFile } from '../lib/host.ts';
import { unpack } from '../stages/02-unpack.ts';
import { readUnpackInfo } from '../stages/handoff.ts';
import { setUp } from './helpers.ts';

let dir: string;
let kver: string;
/** lib/modules/<kver> of the default CD's base, as Debian's depmod left it. */
let tree: string;

const readText = async (folder: string) =>
  Object.fromEntries(await Promise.all(textIndexNames.map(async (n) => [n, await readFile(join(folder, n), 'latin1')]))) as unknown as TextIndexes;
const readBins = async (folder: string) =>
  Object.fromEntries(await Promise.all(binIndexNames.map(async (n) => [n, await readFile(join(folder, n))]))) as unknown as BinIndexes;
const depmod = (root: string) => execFileSync('depmod', ['-b', root, kver]);

setUp(async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the ISO first');
  dir = await mkdtemp(join(tmpdir(), 'kmod-index-'));
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', defaultOutPath, '-extract', '/KNOPPIX/KNOPPIX', join(dir, 'base')], { stdio: 'ignore' });
  const modules = execFileSync('unsquashfs', ['-lc', '-d', '', join(dir, 'base')], { encoding: 'utf8', maxBuffer: 256 << 20 })
    .split('\n').find((l) => /^\/usr\/lib\/modules\/[^/]+\/modules\.dep$/.test(l))!.slice(1).replace(/\/modules\.dep$/, '');
  kver = modules.split('/').pop()!;
  execFileSync('unsquashfs', ['-q', '-no-progress', '-d', join(dir, 'root'), join(dir, 'base'), modules], { stdio: 'ignore' });
  await rm(join(dir, 'base'));
  // depmod -b wants <root>/lib/modules/<kver>.
  await mkdir(join(dir, 'full', 'lib', 'modules'), { recursive: true });
  tree = join(dir, 'full', 'lib', 'modules', kver);
  execFileSync('mv', [join(dir, 'root', modules), tree]);
});

test.after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the index trie: byte for byte what depmod wrote, read back by key', async () => {
  const written = addModules(await readText(tree), []);
  const untouched = addModules(await readText(tree), [], await readBins(tree));
  assert.equal(Object.keys(written).sort(), [...textIndexNames, 'modules.dep.bin', 'modules.alias.bin', 'modules.symbols.bin'].sort());
  for (const [name, data] of Object.entries(written)) {
    assert.ok(data.equals(await readFile(join(tree, name))), `${name} differs from depmod's`);
    assert.ok(untouched[name].equals(data), `${name}: extended by nothing, not the same file`);
  }
  const deps = readIndex(written['modules.dep.bin']);
  assert.match(deps.get('virtio_net')![0].value, /^kernel\/drivers\/net\/virtio_net\.ko: .*net_failover\.ko/);
  // Values of a key are kept in priority order; equal priorities newest first, as depmod does.
  const w = new IndexWriter();
  w.insert('ab', 'two', 2);
  w.insert('ab', 'one', 1);
  w.insert('ab', 'one-again', 1);
  w.insert('a', 'short', 0);
  w.insert('abc', 'long', 0);
  assert.equal([...readIndex(w.toBuffer())], [
    ['a', [{ priority: 0, value: 'short' }]],
    ['ab', [{ priority: 1, value: 'one-again' }, { priority: 1, value: 'one' }, { priority: 2, value: 'two' }]],
    ['abc', [{ priority: 0, value: 'long' }]],
  ]);
  assert.throws(() => w.insert('caf\u00e9', 'x', 0), /only 7-bit ASCII/);
  assert.throws(() => readIndex(Buffer.from('not an index')), /bad magic/);
});

/** A .bin index as key → values, each value's dependency list as a set (its order checked apart). */
function normalised(data: Buffer): Map<string, string[]> {
  return new Map([...readIndex(data)].map(([k, vs]) => [k, vs.map((v) => {
    const colon = v.value.indexOf(':');
    return colon < 0 ? v.value : `${v.value.slice(0, colon)}:${v.value.slice(colon + 1).trim().split(' ').filter(Boolean).sort().join(' ')}`;
  })]));
}

test('modules added to the kernel\'s indexes: what depmod writes for the tree with them', async () => {
  // Modules that no other module uses, between them: exports, dependencies on each other and
  // on the kernel's modules, aliases, a softdep (ext4), a device node (cuse).
  const names = ['failover', 'net_failover', 'virtio_net', 'ext4', 'cuse'];
  const paths = (await readFile(join(tree, 'modules.dep'), 'latin1')).split('\n').map((l) => l.split(':')[0])
    .filter((p) => names.includes(moduleName(p)));
  assert.is(paths.length, names.length);
  const without = join(dir, 'without', 'lib', 'modules', kver);
  const withExtra = join(dir, 'with', 'lib', 'modules', kver);
  for (const t of [without, withExtra]) {
    await mkdir(join(t, '..'), { recursive: true });
    execFileSync('cp', ['-al', tree, t]);
    for (const p of paths) await rm(join(t, p));
  }
  await mkdir(join(withExtra, 'extra'));
  for (const p of paths) await cp(join(tree, p), join(withExtra, 'extra', p.split('/').pop()!));
  depmod(join(dir, 'without'));
  depmod(join(dir, 'with'));
  // In depmod's order, which for modules outside modules.order is its hash table's.
  const order = (await readFile(join(withExtra, 'modules.dep'), 'latin1')).split('\n').filter((l) => l.startsWith('extra/')).map((l) => l.split(':')[0]);
  const facts = await Promise.all(order.map(async (p) => moduleFacts(await readFile(join(withExtra, p)), p)));
  const ours = addModules(await readText(without), facts);
  for (const name of ['modules.alias', 'modules.softdep', 'modules.devname', 'modules.alias.bin', 'modules.symbols.bin']) {
    assert.ok(ours[name].equals(await readFile(join(withExtra, name))), `${name} differs from depmod's`);
  }
  assert.match(ours['modules.softdep'].toString(), /\nsoftdep ext4 pre: \S*crc32c\n/);
  assert.match(ours['modules.devname'].toString(), /\ncuse cuse c10:203\n/);
  // depmod writes symbols in its hash table's order.
  const sorted = (b: Buffer) => b.toString('latin1').split('\n').sort();
  assert.equal(sorted(ours['modules.symbols']), sorted(await readFile(join(withExtra, 'modules.symbols'))));
  // Dependency lists: the same modules; in ours each comes before what it depends on.
  assert.equal(normalised(ours['modules.dep.bin']), normalised(await readFile(join(withExtra, 'modules.dep.bin'))));
  const depLines = new Map(ours['modules.dep'].toString('latin1').split('\n').filter(Boolean).map((l) => {
    const [p, rest] = l.split(':');
    return [p, rest.trim().split(' ').filter(Boolean)];
  }));
  assert.equal(sorted(ours['modules.dep']).map((l) => l.split(':')[0]), sorted(await readFile(join(withExtra, 'modules.dep'))).map((l) => l.split(':')[0]));
  assert.equal(new Set(depLines.get('extra/virtio_net.ko')), new Set(['extra/net_failover.ko', 'extra/failover.ko', 'kernel/drivers/virtio/virtio.ko', 'kernel/drivers/virtio/virtio_ring.ko']));
  for (const [path, deps] of depLines) {
    deps.forEach((d, i) => {
      for (const later of deps.slice(i + 1)) assert.not.ok(depLines.get(later)!.includes(d), `${path}: ${d} listed before ${later}, which needs it`);
    });
  }
  // The kernel's .bin files extended in place instead: the same keys and values, a few nodes
  // appended, everything before them as depmod wrote it.
  const extended = addModules(await readText(without), facts, await readBins(without));
  for (const name of textIndexNames) assert.ok(extended[name].equals(ours[name]), name);
  for (const name of binIndexNames) {
    assert.equal(readIndex(extended[name]), readIndex(ours[name]), `${name} extended in place`);
    const before = await readFile(join(without, name));
    assert.ok(extended[name].subarray(12, before.length).equals(before.subarray(12)), `${name}: the kernel's nodes kept`);
    assert.ok(extended[name].length - before.length < 64 << 10, `${name}: only the new keys' paths added`);
  }
  // modprobe reads them: it resolves virtio_net to its files in load order.
  for (const name of Object.keys(extended)) await rm(join(withExtra, name));
  for (const [name, data] of Object.entries(extended)) await writeFile(join(withExtra, name), data);
  const shown = execFileSync('modprobe', ['-d', join(dir, 'with'), '-S', kver, '--show-depends', 'virtio_net'], { encoding: 'utf8' });
  const loads = shown.split('\n').filter(Boolean).map((l) => l.replace(/^insmod \S+\/lib\/modules\/[^/]+\//, '').trim());
  assert.ok(loads.indexOf('extra/failover.ko') < loads.indexOf('extra/net_failover.ko'), shown);
  assert.is(loads.at(-1), 'extra/virtio_net.ko', shown);
  const byAlias = execFileSync('modprobe', ['-d', join(dir, 'with'), '-S', kver, '--show-depends', 'fs-ext4'], { encoding: 'utf8' });
  assert.match(byAlias, /extra\/ext4\.ko/);
});

test('a module named like one of the kernel\'s replaces it, for its users too', async () => {
  const fuse = (await readFile(join(tree, 'modules.dep'), 'latin1')).split('\n').map((l) => l.split(':')[0]).find((p) => moduleName(p) === 'fuse')!;
  // The kernel's .bin files given: a replaced module's keys must go, so they are written anew.
  const ours = addModules(await readText(tree), [moduleFacts(await readFile(join(tree, fuse)), 'extra/fuse.ko')], await readBins(tree));
  const deps = readIndex(ours['modules.dep.bin']);
  assert.equal(deps.get('fuse')!.map((v) => v.value), ['extra/fuse.ko:']);
  assert.match(deps.get('cuse')![0].value, /: extra\/fuse\.ko$/);
  assert.not.ok(ours['modules.dep'].toString('latin1').includes(fuse), `${fuse} still named`);
  assert.equal(readIndex(ours['modules.symbols.bin']).get('symbol:fuse_dev_operations')!.map((v) => v.value), ['fuse']);
  assert.equal(readIndex(ours['modules.alias.bin']).get('devname:fuse')!.map((v) => v.value), ['fuse']);
});

test('a base without depmod\'s text indexes: unpack takes its whole modules tree and makes them', async () => {
  // A tiny root: three of the kernel's modules, modules.dep only, a static busybox.
  const root = join(dir, 'tiny', 'root');
  const modulesDir = join(root, 'lib', 'modules', kver);
  const paths = (await readFile(join(tree, 'modules.dep'), 'latin1')).split('\n').map((l) => l.split(':')[0])
    .filter((p) => ['isofs', 'failover', 'net_failover'].includes(moduleName(p)));
  for (const p of paths) {
    await mkdir(join(modulesDir, p, '..'), { recursive: true });
    await cp(join(tree, p), join(modulesDir, p));
  }
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) await cp(join(tree, f), join(modulesDir, f));
  depmod(root);
  for (const f of ['modules.alias', 'modules.symbols', 'modules.alias.bin', 'modules.symbols.bin']) await rm(join(modulesDir, f));
  await mkdir(join(root, 'usr', 'bin'), { recursive: true });
  await cp(hostFile('busyboxStatic'), join(root, 'usr', 'bin', 'busybox'));
  const image = join(dir, 'tiny', 'root.squashfs');
  execFileSync('mksquashfs', [root, image, '-quiet', '-no-progress', '-all-root'], { stdio: 'ignore' });
  const fakeBase: Stage<BuildOptions> = {
    name: 'base', module: import.meta.url, summary: 'a remastered base made by hand', after: [], tools: [],
    inputs: () => ({ files: [], params: { image } }),
    async run(ctx) {
      await writeFile(join(ctx.out, 'linux'), 'not a kernel');
      const info = {
        layout: 'knoppix', kernelVersion: kver, kernel: 'linux', rootImage: { file: image, offset: 0, format: 'squashfs' },
        packages: [], source: 'test', remaster: { iso: 'tiny.iso', images: [{ path: 'KNOPPIX/KNOPPIX' }] },
      };
      await writeFile(join(ctx.out, 'base.json'), JSON.stringify(info));
    },
  };
  const options = { site: { initrdModules: [] }, siteDir: dir } as unknown as BuildOptions;
  const done = await runStages([fakeBase, unpack], options, { cacheDir: join(dir, 'tiny', 'cache'), print: () => {} });
  const info = await readUnpackInfo(done.get('unpack')!.dir);
  const unpacked = join(done.get('unpack')!.dir, info.modulesDir);
  for (const p of paths) assert.ok(existsSync(join(unpacked, p)), `${p}: the whole tree`);
  assert.match(await readFile(join(unpacked, 'modules.symbols'), 'utf8'), /^alias symbol:failover_register failover$/m);
  assert.equal(readIndex(await readFile(join(unpacked, 'modules.alias.bin'))).get('fs_iso9660')?.map((v) => v.value), ['isofs']);
  assert.equal([...readIndex(await readFile(join(unpacked, 'modules.symbols.bin'))).keys()].includes('symbol:failover_register'), true);
});

test.run();
