import { open as openFile, mkdir, writeFile } from 'node:fs/promises';
import { readBaseIso, readIsoFile } from '../iso/layout.ts';
import { join } from 'node:path';
import { Machine, type Firmware } from './machine.ts';
import { VSwitch } from './vswitch.ts';
import { hostFile, requireHostFiles } from '../lib/host.ts';
import { requireTools } from '../lib/exec.ts';


export interface NetNodeOptions {
  mac: string;
  protocol: 'pxe' | 'etherboot';
  /** A blank disk of this many MiB, as /dev/vda. */
  diskMiB?: number;
  rtcBase?: string;
}

/**
 * A cluster of VMs on one private switch, in the manner of the NixOS test driver:
 *   const c = await Cluster.start(iso, {...}); const node1 = await c.bootInitNode();
 *   await node1.succeed('ssi-addnode ...'); const node2 = c.bootNetNode('node2', {...});
 *   await node1.waitForConsole(/nodeup: node 2/);
 */
export class Cluster {
  readonly machines = new Map<string, Machine>();

  private constructor(readonly iso: string, readonly dir: string, readonly accel: 'tcg' | 'kvm', readonly net: VSwitch) {}

  /**
   * Everything a cluster may use, checked before the first VM starts: iPXE for Etherboot nodes
   * (Debian's ipxe: what a NIC without PXE boots from), the NIC boot ROM for PXE nodes.
   */
  static requireHost(): void {
    requireTools(['qemu-system-x86_64', 'vde_switch'], 'npm run boot');
    requireHostFiles(['seabios', 'ipxeVirtioRom', 'ipxeIso']);
  }

  static async start(iso: string, o: { dir: string; accel: 'tcg' | 'kvm' }): Promise<Cluster> {
    Cluster.requireHost();
    await mkdir(o.dir, { recursive: true });
    return new Cluster(iso, o.dir, o.accel, await VSwitch.start(o.dir));
  }

  /** Node 1: boots the CD, its first NIC on the interconnect; its shell within shellSec. */
  async bootInitNode(firmware: Firmware = 'bios', o: { name?: string; shellSec?: number } = {}): Promise<Machine> {
    const name = o.name ?? 'node1';
    const vm = Machine.start({
      name, firmware, accel: this.accel, dir: this.dir, iso: this.iso,
      nics: [{ mac: '52:54:00:00:01:01', model: 'e1000', slot: 3, vde: this.net.socket }],
    });
    this.machines.set(name, vm);
    await vm.waitForShell(o.shellSec ?? 240);
    return vm;
  }

  /**
   * A node that boots from the interconnect: PXE from its NIC's boot ROM (virtio-net with iPXE,
   * as QEMU ships it), or Etherboot: a NIC without a ROM and iPXE booted from a CD instead.
   */
  async bootNetNode(name: string, o: NetNodeOptions): Promise<Machine> {
    let disk: string | undefined;
    if (o.diskMiB) {
      disk = join(this.dir, `${name}.disk`);
      const fh = await openFile(disk, 'w');
      await fh.truncate(o.diskMiB * 2 ** 20);
      await fh.close();
    }
    const pxe = o.protocol === 'pxe';
    const vm = Machine.start({
      name, firmware: 'bios', accel: this.accel, dir: this.dir, memoryMiB: 1024, disk, rtcBase: o.rtcBase,
      iso: pxe ? undefined : hostFile('ipxeIso'),
      nics: [pxe
        ? { mac: o.mac, model: 'virtio-net-pci', slot: 3, vde: this.net.socket, bootindex: 1 }
        : { mac: o.mac, model: 'e1000', slot: 3, vde: this.net.socket, romfile: '' }],
    });
    this.machines.set(name, vm);
    return vm;
  }

  /**
   * A stranger on the interconnect: the same CD booted with `openssi=off` (a plain live system,
   * not a cluster node; its kernel and initrd given to QEMU so the argument can be added), its
   * NIC's MAC in no clustertab. The caller gives it an address.
   */
  async bootStranger(name: string, o: { mac: string }): Promise<Machine> {
    const { kernel, initrd } = await readBaseIso(this.iso);
    const files = join(this.dir, `${name}-boot`);
    await mkdir(files, { recursive: true });
    await writeFile(join(files, 'linux'), (await readIsoFile(this.iso, kernel))!);
    // Several initrds (microcode first) are one archive after another, as the boot loader joins them.
    await writeFile(join(files, 'initrd'), Buffer.concat(await Promise.all(initrd.map(async (p) => (await readIsoFile(this.iso, p))!))));
    const vm = Machine.start({
      name, firmware: 'bios', accel: this.accel, dir: this.dir, iso: this.iso,
      nics: [{ mac: o.mac, model: 'e1000', slot: 3, vde: this.net.socket }],
      extraArgs: ['-kernel', join(files, 'linux'), '-initrd', join(files, 'initrd'), '-append', 'console=tty0 console=ttyS0,115200n8 openssi=off'],
    });
    this.machines.set(name, vm);
    await vm.waitForShell(240);
    return vm;
  }

  /** Powers a node off at once (its VM is killed), like pulling its plug. */
  async kill(name: string): Promise<void> {
    await this.machines.get(name)?.stop();
    this.machines.delete(name);
  }

  /** The last lines each running node's console showed: what a failed check should report. */
  consoleTails(lines = 20): string {
    return [...this.machines].map(([name, vm]) => `--- ${name}'s console, last ${lines} lines:\n${vm.tail(lines)}`).join('\n');
  }

  /** Runs a check; if it fails, its error carries every running node's console tail. */
  async showingConsoles<T>(check: () => Promise<T>, lines = 20): Promise<T> {
    try {
      return await check();
    } catch (error) {
      if (error instanceof Error) error.message += `\n${this.consoleTails(lines)}`;
      throw error;
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.machines.values()].map((m) => m.stop()));
    this.machines.clear();
    await this.net.stop();
  }
}
