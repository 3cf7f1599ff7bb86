import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseAccel } from '../driver/accel.ts';
import { Cluster } from '../driver/cluster.ts';
import type { Machine } from '../driver/machine.ts';
import { trackedPids } from '../driver/processes.ts';
import { kernelOf } from '../driver/scenarios.ts';
import { defaultOutPath, projectRoot } from '../lib/paths.ts';

// Issue 4: a three-node cluster on a private switch. Node 1 boots the CD; node 2 boots by PXE
// (virtio-net's boot ROM); node 3 has a NIC without a ROM and boots iPXE from a CD (Etherboot),
// with its clock years off. Every VM is stopped by the `after` hook, pass or fail.
let cluster: Cluster;
let node1: Machine;
let work: string;
const t = { node2Up: 0 };

const out = async (m: Machine, cmd: string, timeout = 60) => (await m.succeed(cmd, timeout)).trim();

test.before(async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the ISO first');
  work = await mkdtemp(join(tmpdir(), 'openssi-netboot-'));
  const accel = await chooseAccel('auto', await kernelOf(defaultOutPath, work));
  cluster = await Cluster.start(defaultOutPath, { dir: join(projectRoot, 'out', 'boot', 'cluster'), accel });
  node1 = await cluster.bootInitNode();
});

test.after(async () => {
  await cluster?.stop();
  await rm(work, { recursive: true, force: true });
  assert.equal(trackedPids(), [], 'every VM and the switch stopped');
});

test('node 2 boots by PXE and joins: nodeup on node 1\'s console', async () => {
  await node1.succeed('ssi-addnode --node 2 --mac 52:54:00:00:02:02 --ip 10.0.0.2 --boot pxe --name node2 --yes');
  const started = performance.now();
  const node2 = await cluster.bootNetNode('node2', { mac: '52:54:00:00:02:02', protocol: 'pxe', diskMiB: 64 });
  const m = await node1.waitForConsole(/nodeup: node (\d+) \((\S+)\)/, 240);
  t.node2Up = (performance.now() - started) / 1000;
  assert.equal([m[1], m[2]], ['2', 'node2']);
  await node2.waitForShell(60);
  assert.is(await out(node2, 'clusternode_num'), '2');
  assert.is(await out(node2, 'cat /etc/nodename'), 'node2');
  console.log(`    node 2: power-on to UP in ${t.node2Up.toFixed(1)} s`);
});

test('node 3 boots by Etherboot (iPXE from a CD, NIC without ROM) with its RTC years off, and joins', async () => {
  await node1.succeed('ssi-addnode --node 3 --mac 52:54:00:00:03:03 --ip 10.0.0.3 --boot etherboot --name node3 --yes');
  const node3 = await cluster.bootNetNode('node3', { mac: '52:54:00:00:03:03', protocol: 'etherboot', rtcBase: '2033-06-01' });
  await node1.waitForConsole(/nodeup: node 3 \(node3\)/, 240);
  await node3.waitForShell(60);
  assert.match(node3.consoleText, /rtc_cmos .*setting system clock to 2033-/, 'its RTC really was years off');
  const [a, b] = (await out(node1, 'date +%s; onnode 3 date +%s')).split('\n').map(Number);
  assert.ok(Math.abs(a - b) <= 2, `node 3's clock within 2 s of node 1's after joining (${a} vs ${b})`);
});

test('cluster -v lists 1, 2, 3 UP; onall and onnode run everywhere with output and status', async () => {
  const v = await out(node1, 'cluster -v');
  for (const [n, name] of [[1, 'node1'], [2, 'node2'], [3, 'node3']]) assert.match(v, new RegExp(`^${n}\\s+${name}\\s+10\\.0\\.0\\.${n}\\s+UP$`, 'm'));
  assert.is(await out(node1, 'cluster'), '1 2 3');
  assert.is(await out(node1, 'onall cat /etc/nodename'), 'node1\nnode2\nnode3');
  const r = await node1.execute('onnode 3 false');
  assert.is.not(r.status, 0);
  assert.is(await out(node1, 'onnode 2 sh -c \'echo "$1 $2"\' sh "a b" "c\'d"'), "a b c'd");
  assert.is(await out(cluster.machines.get('node2')!, 'cluster'), '1 2 3', 'node 2 sees the same membership');
  assert.is(await out(cluster.machines.get('node3')!, 'onnode 2 cat /etc/nodename'), 'node2');
});

test('ssi-timesync resynchronises every node and reports each offset', async () => {
  await out(node1, 'onnode 3 date -u -s @$(( $(date +%s) - 7200 ))');
  const report = await out(node1, 'ssi-timesync');
  assert.match(report, /^node 1 \(node1\): reference clock/m);
  assert.match(report, /^node 2 \(node2\): was -?\d+ s off, set$/m);
  const off = Number(/^node 3 \(node3\): was (-?\d+) s off, set$/m.exec(report)?.[1]);
  assert.ok(Math.abs(off + 7200) <= 3, `node 3 was two hours behind: ${report}`);
  const [a, b] = (await out(node1, 'date +%s; onnode 3 date +%s')).split('\n').map(Number);
  assert.ok(Math.abs(a - b) <= 2);
});

test('the cluster area /cluster is shared: a file written on node 2 is read on node 3 and node 1', async () => {
  await out(node1, 'onnode 2 sh -c "echo written-on-node2 > /cluster/etc/shared-test"');
  assert.is(await out(node1, 'onnode 3 cat /cluster/etc/shared-test'), 'written-on-node2');
  assert.is(await out(node1, 'cat /cluster/etc/shared-test'), 'written-on-node2');
  assert.is(await out(node1, 'onnode 3 readlink /etc/nodename'), '/cluster/node{nodenum}/etc/nodename');
});

test('swap on node 2\'s disk: onnode 2 swapon, and the node= line of the cluster fstab', async () => {
  await node1.succeed('onnode 2 mkswap /dev/vda');
  await node1.succeed('onnode 2 swapon /dev/vda');
  assert.match(await out(node1, 'onnode 2 cat /proc/swaps'), /^\/dev\/vda\s+partition/m);
  await node1.succeed('onnode 2 swapoff /dev/vda');
  await node1.succeed('echo "/dev/vda swap swap defaults,node=2 0 0" >> /etc/fstab');
  await node1.succeed('onnode 2 /etc/init.d/openssi-fstab start');
  assert.match(await out(node1, 'onnode 2 cat /proc/swaps'), /^\/dev\/vda\s+partition/m);
  assert.not.match(await out(node1, 'cat /proc/swaps'), /\/dev\/vda/, 'not on node 1');
});

test('remote execution refuses a key that is not the cluster\'s, and logs it', async () => {
  await node1.succeed('dropbearkey -t ed25519 -f /tmp/stranger >/dev/null');
  // setsid: no controlling terminal, so dbclient cannot stop to ask for a password on the console.
  const r = await node1.execute('timeout 30 setsid -w dbclient -y -y -i /tmp/stranger root@10.0.0.2 true');
  assert.is.not(r.status, 0);
  // grep, not cat: the log holds every onnode session so far, too much for a 115200 baud console.
  assert.match(await out(node1, 'onnode 2 grep "Exit before auth from <10.0.0.1:" /var/log/openssi-remote.log | tail -n 1'), /Exit before auth from <10\.0\.0\.1:\d+>/);
});

test('a MAC that is not in clustertab gets no lease and never boots', async () => {
  await cluster.bootNetNode('stranger', { mac: '52:54:00:00:09:09', protocol: 'pxe' });
  await node1.waitForConsole(/$/, 1);
  await new Promise((r) => setTimeout(r, 25000));
  const log = await out(node1, 'cat /var/log/dnsmasq.log');
  assert.match(log, /52:54:00:00:09:09 ignored/);
  assert.not.match(log, /DHCPACK\(eth0\) \S+ 52:54:00:00:09:09/);
  assert.is(await out(node1, 'cluster'), '1 2 3');
  await cluster.kill('stranger');
});

test('node 2 killed: DOWN within 30 s; booted again: UP again', async () => {
  await cluster.kill('node2');
  const killed = performance.now();
  await node1.waitForConsole(/nodedown: node 2 \(node2\)/, 30);
  assert.ok((performance.now() - killed) / 1000 <= 30);
  assert.match(await out(node1, 'cluster -v'), /^2\s+node2\s+10\.0\.0\.2\s+DOWN$/m);
  assert.is(await out(node1, 'cluster'), '1 3');
  await node1.fail('onnode 2 true');
  await cluster.bootNetNode('node2', { mac: '52:54:00:00:02:02', protocol: 'pxe', diskMiB: 64 });
  await node1.waitForConsole(/nodeup: node 2 \(node2\)/, 240);
  assert.is(await out(node1, 'cluster'), '1 2 3');
  assert.is(await out(node1, 'onnode 2 hostname'), 'node2');
});

test.run();
