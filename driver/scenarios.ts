import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBaseIso, readIsoFile } from '../iso/layout.ts';
import { chooseAccel, type AccelChoice } from './accel.ts';
import { Cluster } from './cluster.ts';
import { Machine, type Firmware } from './machine.ts';
import { VSwitch } from './vswitch.ts';

export interface Check { name: string; ok: boolean; detail: string }
export interface BootReport {
  firmware: Firmware; accel: string; medium: 'cd' | 'usb'; secondsToShell: number; checks: Check[]; serialLog: string; screenshot: string;
  /** Each boot.d service and the seconds its start took, in run order (knoppix-autoconfig's /run/boot-times). */
  bootServices: { name: string; seconds: number }[];
}

/** What /run/boot-times says ("NAME BEGAN ENDED", seconds since boot), as names and durations. */
export function parseBootTimes(text: string): { name: string; seconds: number }[] {
  return [...text.matchAll(/^(\S+) ([\d.]+) ([\d.]+)$/gm)].map((m) => ({ name: m[1], seconds: Number(m[3]) - Number(m[2]) }));
}

/** The kernel an ISO's first boot entry names, copied out for the KVM probe. */
export async function kernelOf(iso: string, dir: string): Promise<string> {
  const kernel = join(dir, 'linux');
  const { kernel: path } = await readBaseIso(iso);
  await writeFile(kernel, (await readIsoFile(iso, path))!);
  return kernel;
}

/**
 * Boots the ISO alone as the init node, with two NICs: the one in the lower PCI slot is declared
 * second and is of another model, so "first NIC" cannot mean "first probed" or "first declared".
 * Checks the root shell, 10.0.0.1/8 on that NIC only, the hostname and the banner.
 */
export async function singleNodeBoot(iso: string, o: {
  firmware: Firmware; accel: AccelChoice; logDir: string; medium?: 'cd' | 'usb';
  /** More checks on the booted node, before it is stopped. */
  also?: (vm: Machine, check: (name: string, ok: boolean, detail: string) => void) => Promise<void>;
}): Promise<BootReport> {
  Machine.requireHost(o.firmware);
  const work = await mkdtemp(join(tmpdir(), 'openssi-boot-'));
  const medium = o.medium ?? 'cd';
  const name = `node1-${o.firmware}-${medium}`;
  let vm: Machine | undefined;
  let net: VSwitch | undefined;
  try {
    const accel = await chooseAccel(o.accel, await kernelOf(iso, work));
    net = await VSwitch.start(work);
    const interconnectMac = '52:54:00:00:01:01';
    const publicMac = '52:54:00:00:01:02';
    vm = Machine.start({
      name, firmware: o.firmware, accel, dir: o.logDir, iso, isoAsUsb: medium === 'usb',
      nics: [
        { mac: publicMac, model: 'virtio-net-pci', slot: 6 },
        { mac: interconnectMac, model: 'e1000', slot: 3, vde: net.socket },
      ],
    });
    const checks: Check[] = [];
    const check = (n: string, ok: boolean, detail: string) => checks.push({ name: n, ok, detail });
    const banner = await vm.waitForConsole(/KNOPPIX\/OpenSSI: node (\d+) \(([^)]+)\), (\S+) on (\S+), cluster (\S+)/, 240);
    const secondsToShell = await vm.waitForShell(60);
    check('root shell on ttyS0', (await vm.succeed('id -u')).trim() === '0', 'id -u');
    check('banner names node 1 and its address', banner[1] === '1' && banner[3] === '10.0.0.1/8', banner[0]);
    const links = await vm.succeed('ip -o link show');
    const addrs = await vm.succeed('ip -o -4 addr show');
    const names = new Map<string, string>();
    // interface name by MAC, from `ip -o link`: "2: eth0: <...> ... link/ether 52:54:..."
    for (const m of links.matchAll(/^\d+: ([^:@]+)[^\n]*link\/ether ([0-9a-f:]+)/gm)) names.set(m[2], m[1]);
    const first = names.get(interconnectMac);
    const second = names.get(publicMac);
    check('both NICs present', Boolean(first && second), links.trim());
    check('10.0.0.1/8 on the first NIC (lowest PCI address)', Boolean(first) && new RegExp(`^\\d+: ${first}\\s+inet 10\\.0\\.0\\.1/8 `, 'm').test(addrs), addrs.trim());
    check('no address on the second NIC', Boolean(second) && !new RegExp(`^\\d+: ${second}\\s+inet `, 'm').test(addrs), addrs.trim());
    const hostname = (await vm.succeed('hostname')).trim();
    check('hostname is the nodename', hostname === 'node1' && (await vm.succeed('cat /etc/nodename')).trim() === 'node1', hostname);
    const hosts = await vm.succeed('cat /etc/hosts');
    check('/etc/hosts maps clustername and nodename', /^10\.0\.0\.1\s+KNOPPIX-OpenSSI$/m.test(hosts) && /^10\.0\.0\.1\s+node1$/m.test(hosts), hosts.trim());
    const mounts = await vm.succeed('cat /proc/mounts');
    // KNOPPIX: /KNOPPIXn:...:/KNOPPIX; live-boot: /run/live/rootfs/<image>.squashfs:...
    check('root is the RAM overlay over the CD layers', /^overlay \/ overlay .*lowerdir=((\/KNOPPIX\d+:)*\/KNOPPIX|[^,\s]*\/run\/live\/rootfs\/[^,\s]*\.squashfs\/?)[,\s]/m.test(mounts), mounts.split('\n').find((l) => l.startsWith('overlay')) ?? mounts);
    const bootServices = parseBootTimes(await vm.succeed('cat /run/boot-times 2>/dev/null || true'));
    await o.also?.(vm, check);
    const screenshot = join(o.logDir, `${name}.png`);
    await vm.screenshot(screenshot);
    return { firmware: o.firmware, accel, medium, secondsToShell, checks, serialLog: vm.serialLog, screenshot, bootServices };
  } finally {
    await vm?.stop();
    await net?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

export interface ClusterReport { accel: string; nodes: { node: number; protocol: string; secondsToUp: number }[]; clusterV: string; logDir: string }

/**
 * Node 1 from the CD, then nodes 2..count from the interconnect (even numbers by PXE, odd by
 * Etherboot), each added with ssi-addnode and waited for until its nodeup.
 */
export async function clusterBoot(iso: string, o: { count: number; accel: AccelChoice; logDir: string }): Promise<ClusterReport> {
  Cluster.requireHost();
  const work = await mkdtemp(join(tmpdir(), 'openssi-cluster-'));
  let cluster: Cluster | undefined;
  try {
    const accel = await chooseAccel(o.accel, await kernelOf(iso, work));
    cluster = await Cluster.start(iso, { dir: o.logDir, accel });
    const node1 = await cluster.bootInitNode();
    const nodes = [];
    for (let n = 2; n <= o.count; n++) {
      const mac = `52:54:00:00:${n.toString(16).padStart(2, '0')}:${n.toString(16).padStart(2, '0')}`;
      const protocol = n % 2 === 0 ? 'pxe' : 'etherboot';
      await node1.succeed(`ssi-addnode --node ${n} --mac ${mac} --ip 10.0.0.${n} --boot ${protocol} --name node${n} --yes`);
      const started = performance.now();
      await cluster.bootNetNode(`node${n}`, { mac, protocol });
      await node1.waitForConsole(new RegExp(`nodeup: node ${n} `), 300);
      nodes.push({ node: n, protocol, secondsToUp: (performance.now() - started) / 1000 });
    }
    return { accel, nodes, clusterV: await node1.succeed('cluster -v'), logDir: o.logDir };
  } finally {
    await cluster?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
