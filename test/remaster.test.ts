import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, rm, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernelOf, singleNodeBoot, type BootReport } from '../driver/scenarios.ts';
import { chooseAccel } from '../driver/accel.ts';
import { Cluster } from '../driver/cluster.ts';
import type { Machine } from '../driver/machine.ts';
import { timelineOf } from '../driver/timeline.ts';
import { trackedPids } from '../driver/processes.ts';
import { fileDigest } from '../lib/hash.ts';
import { defaultOutPath, defaultSiteDir, projectRoot } from '../lib/paths.ts';
import { elToritoEntries } from '../iso/xorriso.ts';
import { squashfsCompressor } from '../iso/squashfs.ts';
import { listRoot } from '../iso/rootfs.ts';
import { isoExtents, readExtent } from '../iso/layout.ts';
import { initrdMembers } from '../iso/initrd.ts';
import { remasterFixtures } from './fixtures.ts';
import { buildCli, isoDifferences, leftovers, setUp } from './helpers.ts';

// Issue 5: a KNOPPIX ISO that the pipeline did not make (cloop root, its own minirt and menus),
// remastered in layer mode and booted; and bad bases refused. Issue 15: clusters grow from the
// remastered CDs (the fixtures are stock: the remaster brings the packages the userland runs).
const logDir = join(projectRoot, 'out', 'boot', 'remaster');
let work: string;
let knoppix: string;
let layered: string;
let flattened: string;
let live: string;
let liveLayered: string;
/** The default site with ssi_compat loaded from the initrd (the layer-mode builds use it). */
let earlySite: string;
/** A fixed cluster key: the same inputs, so the same ISO. */
let clusterKey: string;

setUp(async () => {
  [knoppix, live] = await remasterFixtures();
  work = await mkdtemp(join(tmpdir(), 'remaster-'));
  layered = join(work, 'knoppix-layer.iso');
  flattened = join(work, 'knoppix-flat.iso');
  liveLayered = join(work, 'live-layer.iso');
  earlySite = join(work, 'early-site');
  clusterKey = join(work, 'cluster-key');
  await writeFile(clusterKey, `${'5a'.repeat(32)}\n`);
  await cp(defaultSiteDir, earlySite, { recursive: true });
  const siteJson = JSON.parse(await readFile(join(defaultSiteDir, 'site.json'), 'utf8'));
  await writeFile(join(earlySite, 'site.json'), JSON.stringify({ ...siteJson, initrdModules: ['ssi_compat'] }));
  await mkdir(logDir, { recursive: true });
});

test.after(async () => {
  await rm(work, { recursive: true, force: true });
  assert.equal(trackedPids(), [], 'every VM and switch stopped');
});

async function isoText(iso: string, path: string): Promise<string> {
  const e = (await isoExtents(iso, path)).find((x) => x.path === path);
  assert.ok(e, `${path} in ${iso}`);
  return (await readExtent(iso, e!)).toString('utf8');
}

/**
 * The node's OpenSSI layer, seen from its shell; baseArg is one of the base's own kernel
 * arguments. With rootMounted, ssi_compat must have come from the initrd: its kernel log line is
 * there, before the first line rootMounted matches (the base's init setting up its root).
 */
const openssiChecks = (baseArg: string, rootMounted?: RegExp) => async (vm: Machine, check: (name: string, ok: boolean, detail: string) => void): Promise<void> => {
  const out = async (cmd: string) => (await vm.execute(cmd)).output.trim();
  check('cluster → 1', (await out('cluster')) === '1', await out('cluster'));
  check('ssi_compat loaded', /^ssi_compat\s/m.test(await out('lsmod')), await out('lsmod | head -5'));
  check('CDSL /etc/nodename', (await out('readlink /etc/nodename')).includes('{nodenum}') && (await out('cat /etc/nodename')) === 'node1', await out('ls -l /etc/nodename'));
  check('/demo-proclb present', /README/.test(await out('ls /demo-proclb')), await out('ls /demo-proclb'));
  const cmdline = await out('cat /proc/cmdline');
  check("the base's own kernel arguments kept, ours added", cmdline.split(' ').includes(baseArg) && cmdline.includes('console=ttyS0,115200n8'), cmdline);
  if (rootMounted) {
    const log = (await out('dmesg')).split('\n');
    const loaded = log.findIndex((l) => l.includes('openssi-initrd: loaded ssi_compat'));
    const root = log.findIndex((l) => rootMounted.test(l));
    check('ssi_compat loaded from the initrd, before the root is set up', loaded >= 0 && root > loaded, log.filter((l) => /openssi-initrd|ssi_compat/.test(l) || rootMounted.test(l)).slice(0, 6).join('\n'));
  }
};
const knoppixChecks = openssiChecks('lang=en');
const knoppixEarlyChecks = openssiChecks('lang=en', /cloop/i);
const liveEarlyChecks = openssiChecks('boot=live', /squashfs|systemd\[1\]/);

function assertReport(r: BootReport) {
  for (const c of r.checks) assert.ok(c.ok, `${r.firmware}: ${c.name}\n${c.detail}`);
  console.log(`    ${r.firmware} (${r.accel}): shell after ${r.secondsToShell.toFixed(1)} s: ${timelineOf(r.serialLog)}`);
}

test('layer mode: the cloop base is kept byte for byte, two cloop layers and our arguments added', async () => {
  const r = await buildCli(['--base', knoppix, '--site', earlySite, '--cluster-key', clusterKey, '--out', layered, '--json']);
  assert.is(r.code, 0, r.stderr);
  const names = (await isoExtents(layered, 'KNOPPIX')).map((e) => e.path).sort();
  assert.equal(names, ['KNOPPIX/KNOPPIX', 'KNOPPIX/KNOPPIX1', 'KNOPPIX/KNOPPIX2', 'KNOPPIX/knoppix-version', 'KNOPPIX/md5sums']);
  const root = async (iso: string) => readExtent(iso, (await isoExtents(iso, 'KNOPPIX/KNOPPIX')).find((e) => e.path === 'KNOPPIX/KNOPPIX')!);
  assert.ok((await root(layered)).equals(await root(knoppix)), 'KNOPPIX/KNOPPIX unchanged');
  for (const layer of ['KNOPPIX/KNOPPIX1', 'KNOPPIX/KNOPPIX2']) {
    const head = (await readExtent(layered, (await isoExtents(layered, layer))[0])).subarray(0, 128).toString('latin1');
    assert.match(head, /^#!\/bin\/sh[\s\S]*V[234]\.0/, `${layer} is a cloop image like the base's`);
  }
  const isolinux = await isoText(layered, 'boot/isolinux/isolinux.cfg');
  for (const own of ['initrd=minirt.gz lang=en quiet', 'initrd=minirt.gz lang=en noapic nolapic acpi=off', 'initrd=minirt.gz lang=en memtest=1']) {
    assert.ok(isolinux.includes(`APPEND ${own} console=tty0 console=ttyS0,115200n8`), `isolinux entry '${own}' kept, with ours after it:\n${isolinux}`);
  }
  assert.match(isolinux, /^LABEL failsafe$/m);
  const grub = await isoText(layered, 'boot/grub/grub.cfg');
  assert.match(grub, /menuentry "KNOPPIX failsafe"/);
  assert.match(grub, /linux \/boot\/isolinux\/linux lang=en noapic nolapic acpi=off console=tty0 console=ttyS0,115200n8$/m);
  assert.equal((await elToritoEntries(layered)).map((e) => e.platform), (await elToritoEntries(knoppix)).map((e) => e.platform));
  await assertInitrdWithModules(knoppix, layered, 'boot/isolinux/minirt.gz');
  // Issue 15: the stock base lacks what the userland runs; the OpenSSI layer brings it.
  assert.match(r.stderr, /lacks [^\n]*dnsmasq[^\n]*nfs-kernel-server/, r.stderr);
  // What node 1 serves netbooted nodes: the base's kernel, our minirt, the images as stacked.
  const list = await isoText(layered, 'openssi/netboot.list');
  assert.match(list, /^kernel boot\/isolinux\/linux$/m);
  assert.match(list, /^initrd openssi\/netboot\/minirt\.gz$/m);
  const images = [...list.matchAll(/^image (\S+) ([0-9a-f]{32}) (\S+)$/gm)];
  assert.equal(images.map((m) => `${m[1]} ${m[3]}`), ['cloop KNOPPIX/KNOPPIX', 'cloop KNOPPIX/KNOPPIX1', 'cloop KNOPPIX/KNOPPIX2']);
  assert.is(images[0][2], createHash('md5').update(await root(layered)).digest('hex'), 'the md5 of the base image as it lies in the ISO');
  const netbootMinirt = await initrdMembers(await readExtent(layered, (await isoExtents(layered, 'openssi/netboot/minirt.gz'))[0]));
  assert.ok([...netbootMinirt.keys()].some((k) => /^lib\/modules\/.*\/e1000\.ko/.test(k)), 'the netboot minirt carries the base kernel\'s NIC drivers');
  assert.ok([...netbootMinirt.keys()].some((k) => /^lib\/modules\/.*\/cloop\.ko/.test(k)), "and the base's cloop module");
  // The root image's checksum came from the base's own KNOPPIX/md5sums, which stays true.
  assert.match(r.stderr, /checksums of KNOPPIX\/KNOPPIX from the CD's own list/);
  await assertChecksumListTrue(layered, 'KNOPPIX/md5sums', 'md5', ['KNOPPIX/KNOPPIX1', 'KNOPPIX/KNOPPIX2', 'openssi/netboot.list', 'boot/isolinux/isolinux.cfg']);
});

/**
 * The CD's own checksum list is true of the remastered CD (what KNOPPIX's testcd and live-boot's
 * verify-checksums check): every file it lists is there with that checksum, and it lists what
 * the remaster added (our layers, netboot.list).
 */
async function assertChecksumListTrue(iso: string, list: string, algorithm: 'md5' | 'sha256', added: string[]) {
  const extents = await isoExtents(iso, '');
  const lines = (await isoText(iso, list)).split('\n').filter(Boolean);
  const listed = new Set<string>();
  for (const line of lines) {
    const [, sum, path] = /^([0-9a-f]+) [ *](?:\.\/)?(.+)$/.exec(line) ?? [];
    assert.ok(sum, `${list}: '${line}' is a checksum line`);
    const e = extents.find((x) => x.path === path);
    assert.ok(e, `${list} names ${path}, which is on the CD`);
    assert.is(createHash(algorithm).update(await readExtent(iso, e!)).digest('hex'), sum, `${list}: ${path}`);
    listed.add(path);
  }
  for (const path of added) assert.ok(listed.has(path), `${list} lists ${path}`);
}

/** The base's initrd is a prefix of ours; what follows is our /init, the base's kept, ssi_compat. */
async function assertInitrdWithModules(base: string, iso: string, path: string) {
  const read = async (i: string) => readExtent(i, (await isoExtents(i, path)).find((e) => e.path === path)!);
  const [before, after] = [await read(base), await read(iso)];
  assert.ok(after.length > before.length && after.subarray(0, before.length).equals(before), `${path}: the base's bytes kept in front`);
  const [was, now] = [await initrdMembers(before), await initrdMembers(after)];
  assert.ok(now.get('openssi/init.base')!.data.equals(was.get('init')!.data), "the base's /init kept as /openssi/init.base");
  assert.match(now.get('init')!.data.toString(), /^#!\/openssi\/bin\/busybox sh/);
  assert.is(now.get('openssi/modules/order')!.data.toString(), 'ssi_compat.ko\n');
}

/**
 * Issue 15: node 1 boots the remastered CD, the OpenSSI layer checked on it; node 2
 * netboots from it (the base's kernel, our netboot minirt, the CD's images over HTTP) and joins.
 */
async function clusterFrom(iso: string, name: string, firmware: 'bios' | 'uefi', protocol: 'pxe' | 'etherboot', checks: ReturnType<typeof openssiChecks>, shellSec = 240): Promise<void> {
  const work2 = await mkdtemp(join(tmpdir(), 'remaster-cluster-'));
  const cluster = await Cluster.start(iso, { dir: join(logDir, name), accel: await chooseAccel('auto', await kernelOf(iso, work2)) });
  try {
    await cluster.showingConsoles(async () => {
      const started = performance.now();
      const node1 = await cluster.bootInitNode(firmware, { shellSec });
      console.log(`    ${name}: node 1 shell after ${((performance.now() - started) / 1000).toFixed(1)} s: ${timelineOf(node1.serialLog)}`);
      await checks(node1, (what, ok, detail) => assert.ok(ok, `${name}, node 1: ${what}\n${detail}`));
      await node1.succeed(`ssi-addnode --node 2 --mac 52:54:00:00:02:02 --ip 10.0.0.2 --boot ${protocol} --name node2 --yes`);
      const powered = performance.now();
      const node2 = await cluster.bootNetNode('node2', { mac: '52:54:00:00:02:02', protocol });
      await node1.waitForConsole(/nodeup: node 2 \(node2\)/, 300);
      console.log(`    ${name}: node 2 (${protocol}) UP after ${((performance.now() - powered) / 1000).toFixed(1)} s: ${timelineOf(node2.serialLog)}`);
      await node2.waitForShell(60);
      const v = await node1.succeed('cluster -v');
      for (const n of [1, 2]) assert.match(v, new RegExp(`^${n}\\s+node${n}\\s+10\\.0\\.0\\.${n}\\s+UP$`, 'm'), v);
      assert.is((await node1.succeed('onnode 2 cat /etc/nodename')).trim(), 'node2');
      assert.is((await node1.succeed('onall cat /etc/nodename')).trim(), 'node1\nnode2');
      // Node 2 takes the cluster's view with its first heartbeats.
      await node2.waitUntilSucceeds('test "$(cluster)" = "1 2"', 30);
      assert.match(await node2.succeed('readlink /etc/nodename'), /\{nodenum\}/, 'CDSL on node 2');
      await node2.succeed('echo from-node2 > /cluster/remaster-check');
      assert.is((await node1.succeed('cat /cluster/remaster-check')).trim(), 'from-node2', '/cluster shared');
      // The base had no radvd; the one the layer brought answered the PXE ROM's iPXE, which
      // would otherwise wait 13 s for an IPv6 router before it boots.
      if (protocol === 'pxe') assert.match(await node1.succeed('grep "sending RA to" /var/log/radvd.log'), /sending RA to fe80::5054:ff:fe00:202 on eth0/);
    });
  } finally {
    await cluster.stop();
    await rm(work2, { recursive: true, force: true });
  }
}

test('layer mode: node 1 boots the remastered KNOPPIX (SeaBIOS), node 2 joins by PXE', async () => {
  await clusterFrom(layered, 'knoppix-layer', 'bios', 'pxe', knoppixEarlyChecks);
});

test('layer mode, OVMF on q35: the same through the base\'s own EFI boot, from a USB stick', async () => {
  assertReport(await singleNodeBoot(layered, { firmware: 'uefi', accel: 'auto', logDir, medium: 'usb', also: knoppixEarlyChecks }));
});

test('layer mode is reproducible: from an empty cache, the same ISO byte for byte', async () => {
  const again = join(work, 'repro.iso');
  const r = await buildCli(['--base', knoppix, '--site', earlySite, '--cache', join(work, 'repro-cache'), '--cluster-key', clusterKey, '--out', again, '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is(JSON.parse(r.stdout).sha256, await fileDigest(again), 'the sha256 the build reports is the file\'s');
  if (JSON.parse(r.stdout).sha256 !== await fileDigest(layered)) assert.unreachable(`not the same as the first layer-mode build:\n${await isoDifferences(layered, again)}`);
  await rm(join(work, 'repro-cache'), { recursive: true, force: true });
  await rm(again);
});

test('flatten mode: one cloop image again (cloop in, cloop out) holding the base and our layers', async () => {
  const r = await buildCli(['--base', knoppix, '--pack', 'flatten', '--out', flattened]);
  assert.is(r.code, 0, r.stderr);
  const images = (await isoExtents(flattened, 'KNOPPIX')).filter((e) => /KNOPPIX\d*$/.test(e.path));
  assert.equal(images.map((e) => e.path), ['KNOPPIX/KNOPPIX']);
  assert.match((await readExtent(flattened, images[0])).subarray(0, 128).toString('latin1'), /^#!\/bin\/sh[\s\S]*V[234]\.0/);
  assert.ok((await isoText(flattened, 'boot/isolinux/isolinux.cfg')).includes('APPEND initrd=minirt.gz lang=en noapic nolapic acpi=off console=tty0'));
  assert.equal((await elToritoEntries(flattened)).map((e) => e.platform), ['BIOS', 'UEFI']);
});

test('flatten mode: node 1 boots the flattened KNOPPIX (OVMF on q35, CD), node 2 joins by PXE', async () => {
  await clusterFrom(flattened, 'knoppix-flat', 'uefi', 'pxe', knoppixChecks);
});

test('flatten mode on a squashfs KNOPPIX: squashfs out, the compressor as told', async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the default ISO first');
  const out = join(work, 'flat-squashfs.iso');
  const r = await buildCli(['--base', defaultOutPath, '--pack', 'flatten', '--compressor', 'lz4', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const images = (await isoExtents(out, 'KNOPPIX')).filter((e) => /KNOPPIX\d*$/.test(e.path));
  assert.equal(images.map((e) => e.path), ['KNOPPIX/KNOPPIX'], 'KNOPPIX1 and KNOPPIX2 merged in');
  assert.is(await squashfsCompressor(out, images[0].offset), 'lz4');
  await rm(out);
});

test('Debian live, layer mode: filesystem.squashfs kept, our layers sort after it, menus get a timeout', async () => {
  const r = await buildCli(['--base', live, '--site', earlySite, '--out', liveLayered]);
  assert.is(r.code, 0, r.stderr);
  const names = (await isoExtents(liveLayered, 'live')).map((e) => e.path).filter((p) => p.endsWith('.squashfs'));
  assert.equal(names, ['live/filesystem.squashfs', 'live/zz-openssi-1.squashfs', 'live/zz-openssi-2-site.squashfs']);
  const root = async (iso: string) => readExtent(iso, (await isoExtents(iso, 'live/filesystem.squashfs'))[0]);
  assert.ok((await root(liveLayered)).equals(await root(live)), 'filesystem.squashfs unchanged');
  const entries = await isoText(liveLayered, 'isolinux/live.cfg');
  assert.match(entries, /^\s*append boot=live components quiet console=tty0 console=ttyS0,115200n8$/m);
  assert.match(entries, /^\s*append boot=live components memtest noapic .* console=tty0 console=ttyS0,115200n8$/m);
  assert.match(await isoText(liveLayered, 'isolinux/isolinux.cfg'), /^timeout 30$/m, 'isolinux waits 3 s, not forever');
  assert.match(await isoText(liveLayered, 'boot/grub/grub.cfg'), /menuentry "Live system \(amd64 fail-safe mode\)"[\s\S]*^set timeout=3$/m);
  // isolinux loads live/initrd.img, GRUB the versioned name: both get the modules.
  await assertInitrdWithModules(live, liveLayered, 'live/initrd.img');
  await assertInitrdWithModules(live, liveLayered, (await isoExtents(live, 'live')).map((e) => e.path).find((p) => /^live\/initrd\.img-/.test(p))!);
  // live-build's default list is sha256sum.txt: kept true, and netboot.list takes the root's sha256 from it.
  await assertChecksumListTrue(liveLayered, 'sha256sum.txt', 'sha256', ['live/zz-openssi-1.squashfs', 'live/zz-openssi-2-site.squashfs', 'isolinux/live.cfg']);
  const rootSum = createHash('sha256').update(await root(live)).digest('hex');
  assert.match(await isoText(liveLayered, 'openssi/netboot.list'), new RegExp(`^image squashfs ${rootSum} live/filesystem\\.squashfs$`, 'm'));
});

test('Debian live, layer mode: systemd starts node 1 (OVMF on q35), node 2 joins by Etherboot', async () => {
  await clusterFrom(liveLayered, 'live-layer', 'uefi', 'etherboot', liveEarlyChecks, 480);
});

// Not booted: what differs from the layer-mode CD booted above is the packing, checked here, and
// a flattened CD boots in the KNOPPIX cluster above.
test('Debian live, flatten mode: one filesystem.squashfs (zstd, as the base\'s), the base\'s menus', async () => {
  const out = join(work, 'live-flat.iso');
  const r = await buildCli(['--base', live, '--pack', 'flatten', '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const images = (await isoExtents(out, 'live')).filter((e) => e.path.endsWith('.squashfs'));
  assert.equal(images.map((e) => e.path), ['live/filesystem.squashfs']);
  assert.is(await squashfsCompressor(out, images[0].offset), 'zstd');
  assert.match(await isoText(out, 'isolinux/live.cfg'), /^\s*append boot=live components memtest noapic .* console=tty0 console=ttyS0,115200n8$/m, "the base's entries kept");
  assert.match(await isoText(out, 'boot/grub/grub.cfg'), /menuentry "Live system \(amd64 fail-safe mode\)"/);
  const listed = new Set(await listRoot({ file: out, offset: images[0].offset, format: 'squashfs' }));
  for (const path of ['etc/debian_version', 'usr/sbin/dnsmasq', 'usr/lib/openssi/common.sh', 'cluster/node1/var/log']) {
    assert.ok(listed.has(path), `${path} in the one image: the base, the packages it lacked, our layer`);
  }
});

/** Builds from a bad base: one clear line, exit 1, no ISO, no temporaries, the base untouched. */
async function refused(base: string, pattern: RegExp, extra: string[] = []): Promise<void> {
  const before = await fileDigest(base);
  const out = join(work, 'refused.iso');
  const r = await buildCli(['--base', base, '--out', out, ...extra]);
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('openssi-live:'));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
  assert.not.ok(r.stderr.includes('internal error'), r.stderr);
  assert.not.ok(existsSync(out), 'no ISO');
  assert.equal(await leftovers(work), []);
  assert.is(await fileDigest(base), before, 'base untouched');
}

async function damage(source: string, name: string, image: string, at: number, bytes: Buffer): Promise<string> {
  const copy = join(work, name);
  await copyFile(source, copy);
  const e = (await isoExtents(copy, image)).find((x) => x.path === image)!;
  const fh = await open(copy, 'r+');
  await fh.write(bytes, 0, bytes.length, e.offset + at);
  await fh.close();
  return copy;
}

test('a truncated ISO is refused', async () => {
  const cut = join(work, 'truncated.iso');
  await writeFile(cut, (await readFile(knoppix)).subarray(0, 100 << 20));
  await refused(cut, /truncated\.iso: truncated: the ISO 9660 volume is \d+ bytes, the file has 104857600/);
});

test('a corrupt cloop image is refused', async () => {
  const bad = await damage(knoppix, 'bad-cloop.iso', 'KNOPPIX/KNOPPIX', 40 << 20, Buffer.alloc(1 << 20, 0x5a));
  await refused(bad, /bad-cloop\.iso: KNOPPIX\/KNOPPIX: not a readable cloop image/);
});

test('a corrupt squashfs root is refused', async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the default ISO first');
  const bad = await damage(defaultOutPath, 'bad-squashfs.iso', 'KNOPPIX/KNOPPIX', 96, Buffer.from('this is not a squashfs table'));
  await refused(bad, /bad-squashfs\.iso: KNOPPIX\/KNOPPIX: cannot read its squashfs root/);
});

test('a site module built for another kernel than the base\'s is refused naming both', async () => {
  const site = join(work, 'site');
  await cp(defaultSiteDir, site, { recursive: true });
  // The default CD's ssi_compat.ko (same Debian kernel as the fixture's), its vermagic changed
  // to name another ABI of that kernel.
  const layer = join(work, 'KNOPPIX1');
  await writeFile(layer, await readExtent(defaultOutPath, (await isoExtents(defaultOutPath, 'KNOPPIX/KNOPPIX1'))[0]));
  const path = execFileSync('unsquashfs', ['-lc', '-d', '', layer], { encoding: 'utf8' }).split('\n').find((l) => l.endsWith('/extra/ssi_compat.ko'))!;
  const ko = execFileSync('unsquashfs', ['-cat', layer, path.slice(1)], { maxBuffer: 64 << 20 });
  const text = ko.toString('latin1');
  const m = /vermagic=(\d+\.\d+\.\d+-)(\d+)(-amd64 SMP)/.exec(text)!;
  ko.write(`vermagic=${m[1]}${'9'.repeat(m[2].length)}${m[3]}`, m.index, 'latin1');
  await writeFile(join(site, 'other.ko'), ko);
  await writeFile(join(site, 'site.json'), JSON.stringify({ modules: ['other.ko'] }));
  await refused(knoppix, /other\.ko: built for kernel '\d+\.\d+\.\d+-9+-amd64 SMP [^']*', but the CD's kernel \d+\.\d+\.\d+-\d+-amd64 is/, ['--site', site]);
});

test.run();
