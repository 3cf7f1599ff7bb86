import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseAccel } from '../driver/accel.ts';
import { Cluster } from '../driver/cluster.ts';
import type { Machine } from '../driver/machine.ts';
import { timelineOf } from '../driver/timeline.ts';
import { trackedPids } from '../driver/processes.ts';
import { kernelOf } from '../driver/scenarios.ts';
import { defaultOutPath, projectRoot } from '../lib/paths.ts';
import { setUp } from './helpers.ts';

// Issue 4: a three-node cluster on a private switch. Node 1 boots the CD; node 2 boots by PXE
// (virtio-net's boot ROM); node 3 has a NIC without a ROM and boots iPXE from a CD (Etherboot),
// with its clock years off. Every VM is stopped by the `after` hook, pass or fail.
let cluster: Cluster;
let node1: Machine;
let work: string;
const t = { node2Up: 0 };

const out = async (m: Machine, cmd: string, timeout = 60) => (await m.succeed(cmd, timeout)).trim();

/** Node 1's clock before and after node N's is read (onnode takes a second or two under TCG). */
const CLOCKS = (n: number) => `date +%s.%N; onnode ${n} date +%s.%N; date +%s.%N`;
/** Whether node N's clock (CLOCKS' output) lies between node 1's readings, give or take `slack` seconds. */
function clockWithin(text: string, slack: number): boolean {
  const [before, theirs, after] = text.split('\n').map(Number);
  return theirs >= before - slack && theirs <= after + slack;
}
function assertClockWithin(text: string, slack: number, what: string) {
  const [before, theirs, after] = text.split('\n').map(Number);
  assert.ok(clockWithin(text, slack), `${what}: ${theirs} not within ${slack} s of node 1's ${before}..${after}`);
}

setUp(async () => {
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

test('node 2 boots by PXE and joins: nodeup on node 1\'s console', () => cluster.showingConsoles(async () => {
  await node1.succeed('ssi-addnode --node 2 --mac 52:54:00:00:02:02 --ip 10.0.0.2 --boot pxe --name node2 --yes');
  const started = performance.now();
  const node2 = await cluster.bootNetNode('node2', { mac: '52:54:00:00:02:02', protocol: 'pxe', diskMiB: 64 });
  const m = await node1.waitForConsole(/nodeup: node (\d+) \((\S+)\)/, 240);
  t.node2Up = (performance.now() - started) / 1000;
  assert.equal([m[1], m[2]], ['2', 'node2']);
  await node2.waitForShell(60);
  assert.is(await out(node2, 'clusternode_num'), '2');
  assert.is(await out(node2, 'cat /etc/nodename'), 'node2');
  // Its lease tells pxelinux to reboot and try again 10 s after a failed load (option 211, with
  // pxelinux's magic 208), not to wait 5 minutes for a key.
  const lease = await out(node1, 'grep -e "option:211" -e "option:208" /var/log/dnsmasq.log | tail -n 2');
  assert.match(lease, /option:211\s+00:00:00:0a/, lease);
  assert.match(lease, /option:208\s+f1:00:74:7e/, lease);
  // pxelinux took kernel and minirt over TFTP (the PXE ROM's stack), not lpxelinux's HTTP.
  const tftp = await out(node1, 'grep -e "sent .*netboot/" /var/log/dnsmasq.log');
  assert.match(tftp, /sent \S*netboot\/linux to 10\.0\.0\.2/, tftp);
  assert.match(tftp, /sent \S*netboot\/minirt\.gz to 10\.0\.0\.2/, tftp);
  // Its iPXE asked for an IPv6 router (it boots only once IPv6 is configured or given up on, 13 s
  // later) and node 1's radvd answered it (fe80:: + the EUI-64 of its MAC).
  assert.match(await out(node1, 'grep "sending RA to" /var/log/radvd.log'), /sending RA to fe80::5054:ff:fe00:202 on eth0/);
  console.log(`    node 2: power-on to UP in ${t.node2Up.toFixed(1)} s: ${timelineOf(node2.serialLog)}`);
}));

test('node 3 boots by Etherboot (iPXE from a CD, NIC without ROM) with its RTC years off, and joins', () => cluster.showingConsoles(async () => {
  await node1.succeed('ssi-addnode --node 3 --mac 52:54:00:00:03:03 --ip 10.0.0.3 --boot etherboot --name node3 --yes');
  const node3 = await cluster.bootNetNode('node3', { mac: '52:54:00:00:03:03', protocol: 'etherboot', rtcBase: '2033-06-01' });
  await node1.waitForConsole(/nodeup: node 3 \(node3\)/, 240);
  await node3.waitForShell(60);
  assert.match(node3.consoleText, /rtc_cmos .*setting system clock to 2033-/, 'its RTC really was years off');
  assertClockWithin(await out(node1, CLOCKS(3)), 2, 'node 3 after joining');
}));

test('cluster -v lists 1, 2, 3 UP; onall and onnode run everywhere with output and status', async () => {
  const v = await out(node1, 'cluster -v');
  for (const [n, name] of [[1, 'node1'], [2, 'node2'], [3, 'node3']]) assert.match(v, new RegExp(`^${n}\\s+${name}\\s+10\\.0\\.0\\.${n}\\s+UP$`, 'm'));
  assert.is(await out(node1, 'cluster'), '1 2 3');
  assert.is(await out(node1, 'onall cat /etc/nodename'), 'node1\nnode2\nnode3');
  const r = await node1.execute('onnode 3 false');
  assert.is.not(r.status, 0);
  assert.is(await out(node1, 'onnode 2 sh -c \'echo "$1 $2"\' sh "a b" "c\'d"'), "a b c'd");
  // Nodes take the cluster's view from node 1 with their heartbeats (every 3 s): soon, not at once.
  await cluster.machines.get('node2')!.waitUntilSucceeds('test "$(cluster)" = "1 2 3"', 30);
  await cluster.machines.get('node3')!.waitUntilSucceeds('test "$(cluster)" = "1 2 3"', 30);
  assert.is(await out(cluster.machines.get('node3')!, 'onnode 2 cat /etc/nodename'), 'node2');
  assert.is(await out(node1, 'onall sh -c "pidof dnsmasq > /dev/null && echo serves || echo none"'), 'serves\nnone\nnone', 'DHCP and TFTP on node 1 only');
  // Each member is an NFSv4 client of its own to node 1: under one name (all gave "Linux NFSv4.2
  // (none)") node 1 dropped one's state for the other's, and /cluster hung on them by turns.
  const clients = await out(node1, 'grep -l "^status: confirmed" /proc/fs/nfsd/clients/*/info | xargs grep -h "^name:" | sort');
  assert.equal(clients.split('\n'), [2, 3].map((n) => `name: "Linux NFSv4.2 openssi-node${n}/node${n}"`), clients);
});

test('ssi-timesync resynchronises every node and reports each offset', async () => {
  // Two hours back from node 3's own clock (evaluated there, not sent seconds late over onnode).
  await out(node1, "onnode 3 sh -c 'date -u -s @$(( $(date +%s) - 7200 ))'");
  const report = await out(node1, 'ssi-timesync');
  assert.match(report, /^node 1 \(node1\): reference clock/m);
  assert.match(report, /^node 2 \(node2\): was -?\d+ s off, set$/m);
  const off = Number(/^node 3 \(node3\): was (-?\d+) s off, set$/m.exec(report)?.[1]);
  assert.ok(Math.abs(off + 7200) <= 3, `node 3 was two hours behind: ${report}`);
  assertClockWithin(await out(node1, CLOCKS(3)), 2, 'node 3 after ssi-timesync');
});

test('NTP: ssi-ntp on; node 2\'s clock set 5 s off is pulled back by chrony alone within 60 s; chronyc sources on node 2 shows node 1; off again', async () => {
  assert.is(await out(node1, 'ssi-ntp'), 'NTP: off');
  // Off, no chronyd runs: not even Debian's own service, which would follow the Internet's pool.
  await node1.fail('pidof chronyd');
  assert.match(await out(node1, 'ssi-ntp on', 120), /^NTP on on nodes 1 2 3$/m);
  const node2 = cluster.machines.get('node2')!;
  const selected = /^\^\*\s+10\.0\.0\.1\s/m;
  let sources = '';
  for (const deadline = Date.now() + 90000; Date.now() < deadline && !selected.test(sources);) {
    sources = await out(node2, 'chronyc -n sources');
    if (!selected.test(sources)) await new Promise((r) => setTimeout(r, 2000));
  }
  assert.match(sources, selected, `node 2 follows node 1:\n${sources}`);
  // Five seconds ahead, by node 2's own clock (not sent over onnode, seconds late), and read
  // there at once: chrony, polling every 2 s with makestep, may step it back before node 1 could
  // read it over onnode.
  const jump = Number(await out(node1, "onnode 2 sh -c 't=$(date +%s); date -u -s @$((t + 5)) > /dev/null; echo $(($(date +%s) - t))'"));
  const set = performance.now();
  assert.ok(jump >= 5, `node 2 set 5 s ahead: its clock moved ${jump} s`);
  let clocks = await out(node1, CLOCKS(2));
  while (!clockWithin(clocks, 1) && performance.now() - set < 60000) {
    await new Promise((r) => setTimeout(r, 2000));
    clocks = await out(node1, CLOCKS(2));
  }
  assertClockWithin(clocks, 1, `node 2, ${((performance.now() - set) / 1000).toFixed(0)} s after it was set 5 s off, NTP alone`);
  assert.ok(performance.now() - set <= 60000);
  console.log(`    NTP: node 2, set 5 s ahead, back within 1 s of node 1 after ${((performance.now() - set) / 1000).toFixed(0)} s`);
  assert.match(await out(node1, 'ssi-ntp', 120), /^node 2: [0-9A-F]{8} \(10\.0\.0\.1\); .* seconds (fast|slow) of NTP time$/m);
  assert.match(await out(node1, 'onnode 2 readlink /var/lib/chrony'), /\/cluster\/node\{nodenum\}\/var\/lib\/chrony$/m, 'the drift file is the node\'s own (CDSL)');
  assert.match(await out(node1, 'ssi-ntp off', 120), /^NTP off on nodes 1 2 3$/m);
  await node1.fail('onnode 2 pidof chronyd');
  assert.is(await out(node1, 'ssi-ntp'), 'NTP: off');
});

test('the cluster area /cluster is shared: a file written on node 2 is read on node 3 and node 1', async () => {
  await out(node1, 'onnode 2 sh -c "echo written-on-node2 > /cluster/etc/shared-test"');
  assert.is(await out(node1, 'onnode 3 cat /cluster/etc/shared-test'), 'written-on-node2');
  assert.is(await out(node1, 'cat /cluster/etc/shared-test'), 'written-on-node2');
  assert.is(await out(node1, 'onnode 3 readlink /etc/nodename'), '/cluster/node{nodenum}/etc/nodename');
});

// A job holding 64 MiB of known bytes (sha256('openssi') over and over) that counts every half
// second until /cluster/tmp/stop-job exists, then prints the digest of what it holds and exits 7.
const JOB = [
  'import hashlib, os, time',
  "data = bytearray(hashlib.sha256(b'openssi').digest() * (64 * 1024 * 1024 // 32))",
  'i = 0',
  "while not os.path.exists('/cluster/tmp/stop-job'):",
  '    i += 1',
  "    print('count', i, flush=True)",
  '    time.sleep(0.5)',
  "print('digest', hashlib.sha256(data).hexdigest(), flush=True)",
  'raise SystemExit(7)',
].join('\n');

/** The 64 MiB JOB holds. */
function jobData(): Buffer {
  const pattern = createHash('sha256').update('openssi').digest();
  const data = Buffer.alloc(64 * 1024 * 1024);
  for (let i = 0; i < data.length; i += 32) pattern.copy(data, i);
  return data;
}

/** Starts JOB on node 1 by loadlevel-exec, its output and exit status in `relay`; its name. */
async function startJob(relay: string): Promise<string> {
  await node1.succeed('rm -f /cluster/tmp/stop-job');
  await node1.succeed(`(loadlevel-exec python3 /cluster/tmp/job.py; echo "exit $?") > ${relay} 2>&1 &`);
  await node1.succeed(`timeout 30 sh -c 'until grep -q "^count 3$" ${relay}; do sleep 0.5; done'`, 40);
  const name = await out(node1, 'ls /cluster/var/lib/openssi/jobs/pid');
  assert.match(name, /^\d+$/, 'one movable job');
  return name;
}

/** Three more counts of the job reach `relay`, wherever it runs. */
async function jobGoesOn(relay: string): Promise<void> {
  const last = Number((await out(node1, `grep '^count' ${relay} | tail -n 1`)).split(' ')[1]);
  await node1.succeed(`timeout 60 sh -c 'until grep -q "^count ${last + 3}$" ${relay}; do sleep 0.5; done'`, 70);
}

/** Stops the job: every count once, in order, then its 64 MiB's digest and its exit status 7. */
async function endJob(relay: string, what: string): Promise<void> {
  await node1.succeed('touch /cluster/tmp/stop-job');
  await node1.succeed(`timeout 60 sh -c 'until grep -q "^exit" ${relay}; do sleep 0.5; done'`, 70);
  const lines = (await out(node1, `cat ${relay}`)).split('\n');
  const counts = lines.filter((l) => l.startsWith('count ')).map((l) => Number(l.split(' ')[1]));
  assert.equal(counts, counts.map((_, i) => i + 1), 'counts 1..n, none lost or repeated: the output file went on where it was');
  assert.is(lines.at(-2), `digest ${createHash('sha256').update(jobData()).digest('hex')}`, what);
  assert.is(lines.at(-1), 'exit 7', "the job's exit status, relayed by loadlevel-exec on node 1");
  assert.is(await out(node1, 'ls /cluster/var/lib/openssi/jobs/pid | wc -l'), '0', 'its name is free again');
}

test('criu check passes on every node', async () => {
  for (const n of [1, 2, 3]) assert.match(await out(node1, `onnode ${n} criu check 2>&1`), /Looks good/, `node ${n}`);
});

test('migrate: a job holding 64 MiB moves from node 1 to 2 (run on node 1) and to 3 (run on node 2), and goes on; its name stays', async () => {
  await node1.succeed('mkdir -p /cluster/tmp');
  await node1.succeed(`echo ${Buffer.from(`${JOB}\n`).toString('base64')} | base64 -d > /cluster/tmp/job.py`);
  const name = await startJob('/tmp/job.relay');
  assert.is(await out(node1, `where_pid ${name}`), '1');
  const first = await out(node1, `migrate 2 ${name}`, 120);
  assert.match(first, new RegExp(`^migrate: job ${name} moved from node 1 to node 2 \\(pid \\d+ there\\); frozen \\d+\\.\\d+ s, move \\d+\\.\\d+ s$`, 'm'), first);
  assert.is(await out(node1, `where_pid ${name}`), '2');
  assert.is(await out(node1, `onnode 3 where_pid ${name}`), '2', 'the same name on every node');
  assert.is(await out(node1, "pgrep -x python3 || echo none"), 'none', 'no copy left on node 1');
  assert.match(await out(node1, "onnode 2 pgrep -x python3"), /^\d+$/);
  // Its output reaches node 1 through the NFS client of the node it runs on, which may hold a
  // write back for many seconds under TCG: three new counts within a minute.
  await jobGoesOn('/tmp/job.relay');
  assert.match(await out(node1, `onnode 2 migrate 3 ${name}`, 120), new RegExp(`moved from node 2 to node 3`));
  assert.is(await out(node1, `where_pid ${name}`), '3');
  await jobGoesOn('/tmp/job.relay');
  await endJob('/tmp/job.relay', 'the 64 MiB came through both moves');
});

test('migrate refuses what cannot move, in one line each, and the process runs on', async () => {
  await node1.succeed('sleep 600 & echo $! > /tmp/tty-sleep');
  const sleeper = await out(node1, 'cat /tmp/tty-sleep');
  const refusals: [string, RegExp][] = [
    ['migrate 9 1234', /^migrate: node 9 is not in the cluster$/m],
    ['migrate 2 99999', /^job-checkpoint: no process 99999 on node 1$/m],
    ['migrate 2 1', /^job-checkpoint: PID 1 is this node's init: it cannot move$/m],
    ['migrate 2 2', /^job-checkpoint: process 2 is a kernel thread: it cannot move$/m],
    [`migrate 2 ${sleeper}`, /^job-checkpoint: process \d+ has a terminal: it cannot move/m],
    [`migrate 1 ${sleeper}`, /has a terminal/m],
    ['migrate 2', /^Usage: migrate NODE PID/m],
  ];
  for (const [cmd, want] of refusals) assert.match((await node1.fail(cmd)).trim(), want, cmd);
  assert.is(await out(node1, `ps -o stat= -p ${sleeper} | cut -c 1`), 'S', 'the sleeper runs on, not stopped');
  await node1.succeed(`kill ${sleeper}`);
  // A job holding a file open in node 1's own /tmp: checkpointed, but node 2 has no such file,
  // so the restore fails and the job runs on where it was.
  await node1.succeed("(loadlevel-exec sh -c 'exec 3>/tmp/node1-only; i=0; while :; do i=$((i+1)); echo $i >&3; echo $i; sleep 0.5; done'; echo \"exit $?\") > /tmp/local.relay 2>&1 &");
  await node1.succeed("timeout 30 sh -c 'until grep -q \"^3$\" /tmp/local.relay; do sleep 0.5; done'", 40);
  const name = await out(node1, 'ls /cluster/var/lib/openssi/jobs/pid');
  const failed = await node1.fail(`migrate 2 ${name}`, 120);
  assert.match(failed, /^job-restore: criu could not restore on node 2: .*node1-only/m, failed);
  assert.match(failed, new RegExp(`^migrate: job ${name} did not move: it runs on, on node 1$`, 'm'), failed);
  assert.is(await out(node1, `where_pid ${name}`), '1');
  const at = Number(await out(node1, 'tail -n 1 /tmp/local.relay'));
  await node1.succeed(`timeout 30 sh -c 'until grep -q "^${at + 3}$" /tmp/local.relay; do sleep 0.5; done'`, 40);
  // Signalled by its name from another node: it ends (SIGTERM: 143), and loadlevel-exec says so.
  await node1.succeed(`onnode 2 jobkill ${name}`);
  await node1.succeed("timeout 30 sh -c 'until grep -q \"^exit 143$\" /tmp/local.relay; do sleep 0.5; done'", 40);
});

/** What proclb-worker computes for SECONDS, on one node and unmoved: its checksum. */
function workerChecksum(seconds: number): number {
  let sum = 0;
  for (let round = 1; round <= seconds * 12; round++) {
    for (let i = 1; i <= 5000; i++) sum = (sum * 31 + i + round) % 1000000007;
  }
  return sum;
}

test('/demo-proclb: 4 workers started on node 1 spread to nodes 2 and 3 while they run, each with the checksum of an unmoved run; a pinned one stays', async () => {
  // The same listed program, pinned to node 1 by onnode -p, started first: the daemon, which
  // looks at the oldest job first, has to pass it over every time.
  await node1.succeed('onnode -p 1 loadlevel-exec /demo-proclb/proclb-worker 9 3 > /tmp/pinned.out 2>&1 &');
  // Workers of "5 s" (the worker's fixed work; about a minute of CPU each under TCG here): long
  // enough for two moves of about 25 s each while they run, and the file 2.5 minutes shorter.
  const text = await out(node1, '/demo-proclb/proclb 4 5', 600);
  const finished = [...text.matchAll(/^worker (\d+): finished on node (\d+) .*checksum (\d+)$/gm)];
  assert.is(finished.length, 4, text);
  const spreadTo = new Set(finished.map((m) => m[2]).filter((n) => n !== '1'));
  // Not spread: what each node's daemon was doing (twice node 3's load went stale for minutes).
  const why = spreadTo.size === 2 ? '' : await node1.execute('date +%s; ls -l --time-style=+%s /cluster/var/lib/openssi/loads; '
    + 'for n in 2 3; do echo "--- node $n"; onnode $n sh -c "pgrep -a -f loadleveld; tail -n 15 /var/log/openssi.log"; done', 120).then((r) => r.output);
  assert.equal(spreadTo, new Set(['2', '3']), `workers finished on nodes ${finished.map((m) => m[2]).join(', ')}:\n${text}\n${why}`);
  assert.equal(new Set(finished.map((m) => m[3])), new Set([String(workerChecksum(5))]), text);
  assert.match(text, /^Work spread over \d nodes: .*; \d+ moves\.$/m);
  assert.match(text, /^Wall time: \d+ s/m);
  assert.match(await out(node1, 'grep "loadleveld: load" /var/log/openssi.log | head -n 1'), /moving job \d+ to node [23]/);
  await node1.succeed("timeout 300 sh -c 'until grep -q finished /tmp/pinned.out; do sleep 2; done'", 310);
  const pinned = await out(node1, 'cat /tmp/pinned.out');
  assert.match(pinned, new RegExp(`^worker 9: finished on node 1 .*checksum ${workerChecksum(3)}$`, 'm'), pinned);
  assert.not.match(pinned, /moved/, pinned);
});

test('loadlevel -a off: nothing moves, however loaded node 1 is', async () => {
  await node1.succeed('loadlevel -a off');
  try {
    const text = await out(node1, '/demo-proclb/proclb 2 2', 300);
    assert.match(text, /^All 2 workers finished on node 1: .*; 0 moves\.$/m, text);
  } finally {
    await node1.succeed('loadlevel -a on');
  }
});

test('mkglobalfile: a CDSL becomes one file every UP node shares, and no node keeps a dangling link', async () => {
  // mklocalfile on each node in turn: each keeps its own copy, a later one does not overwrite it.
  await node1.succeed("onall sh -c 'cat /etc/nodename > /etc/where && mklocalfile /etc/where >/dev/null'");
  assert.is(await out(node1, 'onall cat /etc/where'), 'node1\nnode2\nnode3', 'each node its own');
  await node1.succeed('mkglobalfile /etc/where');
  assert.is(await out(node1, 'onall readlink /etc/where'), '/cluster/global/etc/where\n/cluster/global/etc/where\n/cluster/global/etc/where');
  assert.is(await out(node1, 'onall cat /etc/where'), 'node1\nnode1\nnode1', 'node 1\'s copy, everywhere');
  await node1.succeed("onnode 3 sh -c 'echo written-on-3 > /etc/where'");
  assert.is(await out(node1, 'onnode 2 cat /etc/where'), 'written-on-3', 'one file, shared');
  assert.is(await out(node1, 'ls /cluster/node*/etc/where 2>/dev/null | wc -l'), '0', 'the per-node copies are gone');
  assert.not.match(await out(node1, 'onall cat /etc/openssi/cdsl'), /^\/etc\/where$/m, 'off every node\'s CDSL list');
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
  // Its iPXE's router solicitations never reach radvd (the firewall passes members' only).
  assert.is(await out(node1, 'grep -c "fe80::5054:ff:fe00:909" /var/log/radvd.log || true'), '0');
  assert.is(await out(node1, 'cluster'), '1 2 3');
  await cluster.kill('stranger');
});

/** A host outside the cluster (its MAC in no clustertab): the stranger, then the CVIP's client. */
let stranger: Machine;

test('a stranger on the interconnect (static 10.0.0.99, MAC not in clustertab) gets nothing; node 1 says so once', async () => {
  stranger = await cluster.bootStranger('stranger2', { mac: '52:54:00:00:09:99' });
  {
    // The NFS client's modules loaded first: once, under TCG beside eight other attempts, mount
    // reached its 10 s with nothing refused on node 1 (most likely still loading them).
    await stranger.succeed('ip link set eth0 up && ip addr add 10.0.0.99/8 dev eth0 && dropbearkey -t ed25519 -f /tmp/own >/dev/null && modprobe -a nfs nfsv4');
    const attempts = [
      'wget -q -T 5 -t 1 -O /tmp/layer http://10.0.0.1/netboot/2', // the site layer
      'wget -q -T 5 -t 1 -O /tmp/sums http://10.0.0.1/netboot/images',
      'wget -q -T 5 -t 1 -O /tmp/key http://10.0.0.1/openssi/cluster-key',
      "wget -q -T 5 -t 1 -O - 'http://10.0.0.1/cgi-bin/heartbeat?node=2&state=UP'", // claim node 2
      'busybox tftp -g -r pxelinux.0 -l /tmp/pxe 10.0.0.1',
      'mount -t nfs4 -o vers=4.2,proto=tcp,soft,timeo=20,retrans=1 10.0.0.1:/ /mnt',
      'busybox nslookup node1 10.0.0.1',
      'setsid -w dbclient -y -y -i /tmp/own root@10.0.0.1 true', // log in to node 1
      'setsid -w dbclient -y -y -i /tmp/own root@10.0.0.2 true', // and to a netbooted node
    ];
    // All at once: dropped packets only ever time out, so each attempt waits out its timeout.
    await stranger.succeed(`${attempts.map((a, i) => `(timeout 10 ${a}; echo $? > /tmp/attempt.${i}) &`).join(' ')} wait`, 60);
    const codes = (await out(stranger, attempts.map((_, i) => `cat /tmp/attempt.${i}`).join('; '))).split('\n');
    attempts.forEach((a, i) => assert.ok(codes[i] !== undefined && codes[i] !== '0', `the stranger got through: ${a} (exit ${codes[i]})`));
    assert.is(await out(stranger, 'cat /tmp/layer /tmp/sums /tmp/key /tmp/pxe 2>/dev/null | wc -c'), '0', 'nothing fetched');
    assert.not.match(await out(stranger, 'mount'), / \/mnt /, 'nothing mounted');
    // Told on node 1's console in the order they came; each is looked for in all the console says.
    const told = (what: string) => new RegExp(`openssi: refused ${what} from 10\\.0\\.0\\.99 \\(MAC 52:54:00:00:09:99\\)`).test(node1.consoleText);
    const wanted = ['TCP port 80', 'TCP port 22', 'TCP port 2049', 'UDP port 69', 'UDP port 53'];
    for (let waited = 0; !wanted.every(told) && waited < 30; waited++) await new Promise((r) => setTimeout(r, 1000));
    assert.equal(wanted.filter((w) => !told(w)), [], 'refusals told on node 1\'s console');
    // Four requests to port 80, one line: each source and service is told once.
    assert.is(await out(node1, "grep -c 'refused TCP port 80 from 10.0.0.99 ' /var/log/openssi-refused.log"), '1');
    assert.match(await out(node1, 'onnode 2 cat /var/log/openssi-refused.log'), /refused TCP port 22 from 10\.0\.0\.99 /, 'node 2 refused it too');
    assert.match(await out(node1, 'cluster -v'), /^2\s+node2\s+10\.0\.0\.2\s+UP$/m, 'the false heartbeat changed nothing');
    // The key is in no layer that is served: the site layer a member fetches does not hold it.
    await node1.succeed('onnode 2 wget -q -O /tmp/site-layer http://10.0.0.1/netboot/2 && onnode 2 mount -o loop,ro /tmp/site-layer /mnt');
    assert.is(await out(node1, 'onnode 2 find /mnt -name "cluster-key*" | wc -l'), '0');
    assert.match(await out(node1, 'onnode 2 cat /mnt/root/.ssh/authorized_keys'), /^no-port-forwarding\S* ssh-ed25519 /, 'the public half is');
    await node1.succeed('onnode 2 umount /mnt');
    // A member still does all of it.
    assert.match(await out(node1, "onnode 3 wget -q -O - 'http://10.0.0.1/cgi-bin/heartbeat?node=3&state=UP'"), /^2 UP node2$/m);
    assert.match(await out(node1, 'onnode 3 grep " /cluster " /proc/mounts'), /^10\.0\.0\.1:\/ \/cluster nfs4 /);
    assert.not.match(await out(node1, 'cat /etc/exports'), /insecure|10\.0\.0\.0\//, 'per member, no insecure');
  }
});

/** cvip.conf with CVIP 10.0.0.100 directed by the given nodes, in that order. */
const cvipConf = (directors: number[], routing = 'DR') => ['<?xml version="1.0"?>', '<cvips>', `<routing>${routing}</routing>`, '<cvip>', '<ip_addr>10.0.0.100</ip_addr>',
  ...directors.map((n) => `<director_node><node_num>${n}</node_num></director_node>`), '</cvip>', '</cvips>'].map((l) => `'${l}'`).join(' ');
/** N connections to the CVIP's port 8080 from the client, as a shell loop: a name or "failed" a line. */
const askCvip = (n: number) => `for i in $(seq ${n}); do wget -q -T 5 -t 1 -O - http://10.0.0.100:8080/ || echo failed; done`;
/** Who answered N connections to the CVIP's port 8080, from the client: "count name" lines. */
const answers = async (n: number) => out(stranger, `${askCvip(n)} | sort | uniq -c`, 240);
/** The real servers node N's IPVS has for the CVIP's PORT. */
const pool = async (n: number, port: number) => out(node1, `onnode ${n} ipvsadm -L -n -t 10.0.0.100:${port} | awk '$1 == "->" && $2 ~ /^10/ { print $2 }'`);

/**
 * Node N's IPVS has the CVIP's port 8080 going to 3 nodes, forwarded as HOW says (Route, Masq),
 * each with a weight: its health check passed (keepalived's alpha: weight 0 until then).
 */
const poolOfThree = async (n: number, how: string) => node1.succeed(`timeout 60 sh -c 'until [ "$(onnode ${n} ipvsadm -L -n -t 10.0.0.100:8080 | grep -c "^  -> 10\\..* ${how}  *[1-9]")" = 3 ]; do sleep 1; done'`, 70);

test('CVIP: /etc/cvip.conf edited, then reloaded from node 2 (a bad one refused whole); 60 connections from a client outside the cluster are answered by the 3 nodes serving the port; a stopped service leaves the pool', async () => {
  // Each node serves its name on 8080; nodes 1 and 2 serve a bigger file on 8081.
  for (const n of [1, 2, 3]) {
    await node1.succeed(`onnode ${n} sh -c 'mkdir -p /tmp/www /tmp/big && hostname > /tmp/www/index.html && busybox httpd -p 8080 -h /tmp/www'`);
  }
  for (const n of [1, 2]) await node1.succeed(`onnode ${n} sh -c 'seq 200000 > /tmp/big/big && busybox httpd -p 8081 -h /tmp/big'`);
  // A director that is not a member: refused whole, in one line; nothing applied anywhere.
  await node1.succeed(`printf '%s\\n' ${cvipConf([3, 9])} > /etc/cvip.conf`);
  const refused = await node1.fail('onnode 2 invoke-rc.d openssi-cvip reload');
  assert.match(refused, /^\/etc\/cvip\.conf: director node 9 of CVIP 10\.0\.0\.100 is not in clustertab$/m, refused);
  assert.not.match(await out(node1, 'cvip'), /10\.0\.0\.100/);
  await node1.succeed(`printf '%s\\n' ${cvipConf([3, 2])} > /etc/cvip.conf`);
  // Each node applies it within its 2 s beat; with four VMs on this host's two cores and CPU
  // stolen by its own host, a fresh-clone run once took over a minute.
  const reloaded = await out(node1, 'onnode 2 invoke-rc.d openssi-cvip reload', 180);
  assert.match(reloaded, /^openssi-cvip: \/etc\/cvip\.conf applied on nodes 1 2 3$/m, reloaded);
  // Node 3, listed first, holds it; its IPVS balances 8080 over all three, 8081 over 1 and 2.
  await node1.succeed("timeout 90 sh -c 'until cvip | grep -q \"^10.0.0.100 .* node 3 .* 8080 8081\"; do sleep 1; done'", 100);
  // Only what a program chose to serve: not node 1's RPC daemons (ports the kernel handed out).
  assert.match(await out(node1, 'cvip'), /^10\.0\.0\.100\s+3 2\s+node 3\s+8080 8081\s*$/m);
  assert.match(await out(node1, 'nft list chain inet openssi input'), /ip daddr 10\.0\.0\.100 tcp dport \{ 8080, 8081 \} accept/);
  await poolOfThree(3, 'Route');
  assert.equal((await pool(3, 8080)).split('\n'), ['10.0.0.1:8080', '10.0.0.2:8080', '10.0.0.3:8080']);
  assert.equal((await pool(3, 8081)).split('\n'), ['10.0.0.1:8081', '10.0.0.2:8081']);
  assert.match(await out(node1, 'getent hosts KNOPPIX-OpenSSI'), /^10\.0\.0\.100\s/, 'the clustername is the CVIP');
  await stranger.succeed('ip link set eth0 up; ip addr replace 10.0.0.99/8 dev eth0');
  const told = await answers(60);
  for (const name of ['node1', 'node2', 'node3']) assert.match(told, new RegExp(`^\\s*20 ${name}$`, 'm'), told);
  // Node 1 stops serving 8080: it leaves the pool within 10 s, and no connection goes to it.
  await node1.succeed("pkill -f 'httpd -p 8080'");
  const stopped = performance.now();
  await node1.succeed("timeout 30 sh -c 'until ! onnode 3 ipvsadm -L -n -t 10.0.0.100:8080 | grep -q 10.0.0.1:8080; do sleep 0.5; done'", 40);
  console.log(`    CVIP: node 1 out of the pool ${((performance.now() - stopped) / 1000).toFixed(1)} s after its service stopped`);
  assert.ok((performance.now() - stopped) / 1000 <= 30);
  assert.not.match(await answers(6), /node1|failed/);
});

test('CVIP by NAT: cvip.conf says NAT, reloaded: the director hands each connection to a node with the CVIP as its source; 30 connections answered by the 3 nodes; DR again', async () => {
  await node1.succeed('busybox httpd -p 8080 -h /tmp/www');
  await node1.succeed(`printf '%s\\n' ${cvipConf([3, 2], 'NAT')} > /etc/cvip.conf`);
  const reloaded = await out(node1, 'invoke-rc.d openssi-cvip reload', 180);
  assert.match(reloaded, /^openssi-cvip: \/etc\/cvip\.conf applied on nodes 1 2 3$/m, reloaded);
  assert.match(await out(node1, 'cvip'), /^Routing: NAT$/m);
  // Only the director holds the CVIP: a node answers it over the interconnect.
  assert.not.match(await out(node1, 'ip -4 -o addr show dev lo'), /10\.0\.0\.100/);
  try {
    await poolOfThree(3, 'Masq');
    // In order, not counted: a failure shows when it came.
    const told = (await out(stranger, askCvip(30), 240)).split('\n');
    for (const name of ['node1', 'node2', 'node3']) assert.is(told.filter((t) => t === name).length, 10, told.join(' '));
    // A download under way: the node serving it sees the CVIP as its client, not the client itself.
    await stranger.succeed('(wget -q --limit-rate=50k -O /dev/null http://10.0.0.100:8081/big; echo "exit $?" > /tmp/nat.exit) > /dev/null 2>&1 &');
    await new Promise((r) => setTimeout(r, 3000));
    const peers = await out(node1, 'for n in 1 2; do onnode $n ss -H -t -n state established; done | grep ":8081 " || true');
    assert.match(peers, /[\s:]10\.0\.0\.100\]?:\d+\s*$/m, peers); // [::ffff:10.0.0.100]: httpd listens on IPv6 too
    assert.not.match(peers, /10\.0\.0\.99/, peers);
    await stranger.succeed("timeout 60 sh -c 'until [ -e /tmp/nat.exit ]; do sleep 0.5; done'", 70);
    assert.is(await out(stranger, 'cat /tmp/nat.exit'), 'exit 0');
  } finally {
    // Back to DR for what follows, even after a failure: every node holds the CVIP on lo again.
    await node1.succeed(`printf '%s\\n' ${cvipConf([3, 2])} > /etc/cvip.conf`);
    assert.match(await out(node1, 'invoke-rc.d openssi-cvip reload', 180), /applied on nodes 1 2 3$/m);
  }
  assert.match(await out(node1, 'ip -4 -o addr show dev lo'), /10\.0\.0\.100\/32/);
  await poolOfThree(3, 'Route');
  assert.not.match(await answers(3), /failed/);
});

test('NFS server behind the CVIP: ssi-nfs-server on for the client; it mounts it (/cluster/export) through the CVIP, reads and writes there (root squashed), sees nothing above it; off: no new mount', async () => {
  assert.match(await node1.fail('ssi-nfs-server on 10.0.0.999'), /^ssi-nfs-server: clients '10\.0\.0\.999' is not an IPv4 address or network/m);
  assert.match(await node1.fail('ssi-nfs-server on 10.0.0.99 /etc'), /^ssi-nfs-server: folder '\/etc' is not inside \/cluster$/m);
  assert.match(await out(node1, 'ssi-nfs-server'), /: off$/);
  assert.match(await out(node1, 'onnode 2 ssi-nfs-server on 10.0.0.99'), /^ssi-nfs-server: \/cluster\/export exported to 10\.0\.0\.99$/m);
  await node1.succeed('echo from-the-cluster > /cluster/export/hello');
  // Node 1 tells its NFS among its ports within its 2 s beat; the director, node 3, balances the
  // CVIP's 2049 to node 1 alone.
  await node1.succeed("timeout 90 sh -c 'until cvip | grep -q \"^10.0.0.100 .* node 3 .*2049\"; do sleep 1; done'", 100);
  await node1.succeed("timeout 60 sh -c 'until onnode 3 ipvsadm -L -n -t 10.0.0.100:2049 | grep -q \"^  -> 10.0.0.1:2049\"; do sleep 1; done'", 70);
  assert.equal((await pool(3, 2049)).split('\n'), ['10.0.0.1:2049']);
  assert.match(await out(node1, 'nft list table inet openssi'), /ip daddr 10\.0\.0\.100 tcp dport 2049 dnat ip to 10\.0\.0\.1/);
  const mount = 'mount -t nfs4 -o vers=4.2,proto=tcp,soft,timeo=50,retrans=2';
  // The client's NFSv4 root is the folder: nothing above it, of /cluster, is there to see.
  await stranger.succeed(`mkdir -p /mnt/nfs && timeout 90 ${mount} 10.0.0.100:/ /mnt/nfs`, 100);
  assert.is(await out(stranger, 'ls -A /mnt/nfs'), 'hello');
  assert.is(await out(stranger, 'cat /mnt/nfs/hello'), 'from-the-cluster');
  await stranger.succeed('echo from-outside > /mnt/nfs/outside && sync');
  assert.is(await out(node1, 'onnode 2 cat /cluster/export/outside'), 'from-outside');
  assert.is(await out(node1, 'stat -c %U /cluster/export/outside'), 'nobody', 'root on the client is nobody here');
  await stranger.fail('echo no > /mnt/nfs/hello'); // nobody may not change what root wrote
  await stranger.succeed('umount /mnt/nfs');
  assert.match(await out(node1, 'ssi-nfs-server off'), /^ssi-nfs-server: off$/m);
  await stranger.fail(`timeout 30 ${mount} 10.0.0.100:/ /mnt/nfs`, 40);
  assert.not.match(await out(stranger, 'mount'), / \/mnt\/nfs /);
});

test('CVIP: its director (node 3) killed: the client is answered again within seconds, node 3 leaves the pool within 10 s, a download begun before ends whole', async () => {
  try {
    // 1.3 MB at 100 kB/s: running when node 3 goes; served by node 1 or 2, whichever IPVS chose.
    await stranger.succeed('seq 200000 | md5sum > /tmp/want; (wget -q --limit-rate=100k -O /tmp/got http://10.0.0.100:8081/big; echo "exit $?" > /tmp/got.exit) > /dev/null 2>&1 &');
    await stranger.succeed("timeout 20 sh -c 'until [ -s /tmp/got ]; do sleep 0.2; done'", 30);
    await cluster.kill('node3');
    const killed = performance.now();
    await stranger.succeed("timeout 60 sh -c 'until wget -q -T 1 -t 1 -O /dev/null http://10.0.0.100:8080/; do :; done'", 70);
    const back = (performance.now() - killed) / 1000;
    console.log(`    CVIP: answered again ${back.toFixed(1)} s after its director was killed`);
    assert.ok(back <= 15, `answered again after ${back.toFixed(1)} s`);
    // Node 3 out of the pool of the director that took over (its health check, or nodedown).
    await node1.succeed("timeout 30 sh -c 'until ! onnode 2 ipvsadm -L -n -t 10.0.0.100:8080 | grep -q 10.0.0.3:8080; do sleep 0.5; done'", 40);
    const left = (performance.now() - killed) / 1000;
    console.log(`    CVIP: node 3 out of the pool ${left.toFixed(1)} s after it was killed`);
    assert.ok(left <= 10, `node 3 left the pool after ${left.toFixed(1)} s`);
    await stranger.succeed("timeout 90 sh -c 'until [ -e /tmp/got.exit ]; do sleep 0.5; done'", 100);
    assert.is(await out(stranger, 'cat /tmp/got.exit'), 'exit 0');
    assert.is(await out(stranger, 'md5sum < /tmp/got'), await out(stranger, 'cat /tmp/want'), 'the download whole');
    await node1.succeed("timeout 60 sh -c 'until cvip | grep -q \"^10.0.0.100 .* node 2 \"; do sleep 1; done'", 70);
    assert.not.match(await answers(6), /node3|failed/);
  } finally {
    await cluster.kill('stranger2');
  }
});

test('two ssi-addnode at once, on node 1 and on node 2, both land in clustertab and dhcp-hosts', async () => {
  await node1.succeed('ssi-addnode --node 4 --mac 52:54:00:00:04:04 --ip 10.0.0.4 --boot pxe --name node4 --yes >/tmp/a4 2>&1 & a=$!; '
    + 'onnode 2 ssi-addnode --node 5 --mac 52:54:00:00:05:05 --ip 10.0.0.5 --boot etherboot --name node5 --yes >/tmp/a5 2>&1 & b=$!; '
    + 'wait $a; echo "node 1: exit $?" >> /tmp/a4; wait $b; echo "node 2: exit $?" >> /tmp/a5', 180);
  const said = await out(node1, 'cat /tmp/a4 /tmp/a5');
  assert.match(said, /^node 1: exit 0$/m, said);
  assert.match(said, /^node 2: exit 0$/m, said);
  const tab = await out(node1, 'cat /etc/clustertab');
  assert.match(tab, /^4\t10\.0\.0\.4\t52:54:00:00:04:04\tP\t/m);
  assert.match(tab, /^5\t10\.0\.0\.5\t52:54:00:00:05:05\tE\t/m);
  const hosts = await out(node1, 'cat /cluster/etc/dhcp-hosts');
  assert.match(hosts, /^52:54:00:00:04:04,set:pxe,10\.0\.0\.4,node4$/m);
  assert.match(hosts, /^52:54:00:00:05:05,set:etherboot,10\.0\.0\.5,node5$/m);
  assert.is(await out(node1, 'ls -a /cluster/etc | grep -c "XXXX\\|\\.new\\|lock" || true'), '0', 'no temporary or lock left');
  // Both are let through node 1's firewall at once (the members set).
  assert.match(await out(node1, 'nft list set inet openssi members'), /10\.0\.0\.5 \. 52:54:00:00:05:05/);
});

test('membership-watch killed: init starts it again within seconds, and DOWN detection still works', async () => {
  const before = await out(node1, 'pgrep -o -f /usr/lib/openssi/membership-watch');
  await node1.succeed(`kill ${before}`);
  await node1.succeed("timeout 15 sh -c 'until pgrep -o -f /usr/lib/openssi/membership-watch >/dev/null; do sleep 0.5; done'", 30);
  assert.is.not(await out(node1, 'pgrep -o -f /usr/lib/openssi/membership-watch'), before);
});

test('node 2 killed while a job moves to it: the job runs on on node 1, nothing lost; DOWN within 30 s; booted again: UP again', () => cluster.showingConsoles(async () => {
  const name = await startJob('/tmp/job2.relay');
  const id = (await out(node1, `cut -d ' ' -f 3 /cluster/var/lib/openssi/jobs/pid/${name}`)).trim();
  // Node 2 busy (four CPU-bound loops) restores slowly: a wide window to kill it in.
  await node1.succeed("onnode 2 sh -c 'for i in 1 2 3 4; do (while :; do :; done) < /dev/null > /dev/null 2>&1 & done'");
  await node1.succeed(`(migrate 2 ${name}; echo "exit $?") > /tmp/migrate.out 2>&1 &`);
  // The job is frozen and being checkpointed (64 MiB, then restored on node 2): now node 2 goes.
  await node1.succeed(`timeout 120 sh -c 'until ls /cluster/var/lib/openssi/jobs/${id}/move.*/dump.log >/dev/null 2>&1; do sleep 0.05; done'`, 130);
  await cluster.kill('node2');
  const killed = performance.now();
  await node1.waitForConsole(/nodedown: node 2 \(node2\)/, 30);
  assert.ok((performance.now() - killed) / 1000 <= 30);
  assert.match(await out(node1, 'cluster -v'), /^2\s+node2\s+10\.0\.0\.2\s+DOWN$/m);
  assert.is(await out(node1, 'cluster'), '1', 'node 3 has been down since the CVIP test');
  await node1.fail('onnode 2 true');
  assert.match((await node1.fail('migrate 2 1234')).trim(), /^migrate: node 2 is not up \(DOWN\)$/);
  // migrate learns it from the connection (no answer to keepalives), then resumes the job.
  await node1.succeed("timeout 90 sh -c 'until grep -q \"^exit\" /tmp/migrate.out; do sleep 0.5; done'", 100);
  const migrated = await out(node1, 'cat /tmp/migrate.out');
  assert.match(migrated, new RegExp(`^migrate: job ${name} did not move: it runs on, on node 1$`, 'm'), migrated);
  assert.match(migrated, /^exit 1$/m, migrated);
  assert.is(await out(node1, `where_pid ${name}`), '1');
  await jobGoesOn('/tmp/job2.relay');
  await endJob('/tmp/job2.relay', 'its 64 MiB intact');
  await cluster.bootNetNode('node2', { mac: '52:54:00:00:02:02', protocol: 'pxe', diskMiB: 64 });
  // A PXE node whose kernel or minirt fails to load reboots 10 s later and tries again (option
  // 211): room for one such retry.
  await node1.waitForConsole(/nodeup: node 2 \(node2\)/, 330);
  assert.is(await out(node1, 'cluster'), '1 2');
  assert.is(await out(node1, 'onnode 2 hostname'), 'node2');
}, 40));

test.run();
