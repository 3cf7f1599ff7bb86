import { type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { startTracked, stopTracked } from './processes.ts';
import { Qmp } from './qmp.ts';
import { hostFile, requireHostFiles } from '../lib/host.ts';
import { requireTools } from '../lib/exec.ts';

export type Firmware = 'bios' | 'uefi';


export interface Nic {
  mac: string;
  model?: 'virtio-net-pci' | 'e1000' | 'rtl8139';
  /** PCI slot; the first NIC is the one with the lowest address. */
  slot?: number;
  /** vde switch socket; without one the NIC is plugged into nothing. */
  vde?: string;
  /** Boot from this NIC (its option ROM: PXE). */
  bootindex?: number;
  /** '' removes the NIC's boot ROM, as on a NIC without PXE. */
  romfile?: string;
}

export interface MachineOptions {
  name: string;
  firmware: Firmware;
  accel: 'tcg' | 'kvm';
  /** Folder for the serial log, screenshots and sockets. */
  dir: string;
  iso?: string;
  /** Boot the ISO as a USB stick instead of a CD. */
  isoAsUsb?: boolean;
  memoryMiB?: number;
  nics?: Nic[];
  /** A raw disk image, as virtio disk /dev/vda. */
  disk?: string;
  /** The real-time clock's start ('2031-01-01' for a clock years off); default: now (UTC). */
  rtcBase?: string;
  extraArgs?: string[];
}

export interface CommandResult { status: number; output: string }

let commandCounter = 0;

/**
 * One QEMU VM driven through its first serial port, in the manner of the NixOS test driver:
 * `await node1.waitForConsole(/login/)`, `await node1.succeed('cluster -v')`.
 */
export class Machine {
  readonly name: string;
  readonly serialLog: string;
  private child: ChildProcess;
  private console = '';
  /** Console text before this offset has been consumed by a wait or a command. */
  private cursor = 0;
  private listeners: (() => void)[] = [];
  private log: WriteStream;
  private timedLog: WriteStream;
  private qmpPath: string;
  readonly startedAt = performance.now();

  private constructor(readonly options: MachineOptions) {
    Machine.requireHost(options.firmware);
    if ((options.nics ?? []).some((n) => n.bootindex !== undefined && n.romfile === undefined)) requireHostFiles(['ipxeVirtioRom']);
    this.name = options.name;
    mkdirSync(options.dir, { recursive: true });
    this.serialLog = join(options.dir, `${options.name}.serial.log`);
    this.qmpPath = join(options.dir, `${options.name}.qmp`);
    this.log = createWriteStream(this.serialLog);
    this.child = startTracked(`qemu ${options.name}`, 'qemu-system-x86_64', this.args(), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    this.timedLog = createWriteStream(join(options.dir, `${options.name}.serial.timed.log`));
    let partial = '';
    this.child.stdout!.on('data', (chunk: string) => {
      this.log.write(chunk);
      // Each line with the seconds since power-on it arrived at: where a boot's time goes
      // (firmware, network boot, kernel, services), which the guest's own clock cannot tell.
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      const at = ((performance.now() - this.startedAt) / 1000).toFixed(2).padStart(8);
      for (const line of lines) this.timedLog.write(`${at} ${line.replace(/\r/g, '')}\n`);
      this.console += chunk.replace(/\r/g, '');
      for (const l of this.listeners.splice(0)) l();
    });
    let stderr = '';
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      stderr += chunk;
    });
    this.child.once('exit', (code, signal) => {
      this.console += `\n[qemu exited: ${signal ?? code}] ${stderr.trim().split('\n').filter((l) => !/ui-ui-|not connected to host network/.test(l)).join(' ')}\n`;
      for (const l of this.listeners.splice(0)) l();
    });
    this.child.stdin!.on('error', () => {});
  }

  /** A missing emulator or firmware is one line before the VM starts, not a silent console. */
  static requireHost(firmware: Firmware): void {
    requireTools(['qemu-system-x86_64', 'vde_switch'], 'npm run boot');
    requireHostFiles(firmware === 'uefi' ? ['ovmfCode', 'ovmfVars'] : ['seabios']);
  }

  static start(options: MachineOptions): Machine {
    return new Machine(options);
  }

  private args(): string[] {
    const o = this.options;
    const args = [
      '-name', o.name, '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'std',
      '-m', String(o.memoryMiB ?? 1024), '-smp', '1', '-accel', o.accel,
      // One CPU model for every VM (process migration needs the same one on every node), with
      // RDRAND as real PCs have: the kernel seeds its random pool at once instead of waiting
      // seconds for entropy (NFSD waits for that pool).
      '-cpu', 'qemu64,+rdrand',
      '-chardev', 'stdio,id=serial0,signal=off', '-serial', 'chardev:serial0',
      '-qmp', `unix:${this.qmpPath},server=on,wait=off`,
    ];
    if (o.firmware === 'uefi') {
      const vars = join(o.dir, `${o.name}.OVMF_VARS.fd`);
      // OVMF as Debian ships it: 4 MiB flash, code read-only, variables per VM.
      copyFileSync(hostFile('ovmfVars'), vars);
      args.push('-machine', 'q35',
        '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${hostFile('ovmfCode')}`,
        '-drive', `if=pflash,format=raw,unit=1,file=${vars}`);
    } else {
      args.push('-machine', 'pc');
    }
    if (o.iso && o.isoAsUsb) {
      args.push('-device', 'qemu-xhci,id=xhci,addr=10', '-drive', `if=none,id=stick,format=raw,readonly=on,file=${o.iso}`,
        '-device', 'usb-storage,bus=xhci.0,drive=stick,bootindex=1');
    } else if (o.iso) {
      args.push('-drive', `if=none,id=cd,media=cdrom,readonly=on,file=${o.iso}`,
        '-device', `${o.firmware === 'uefi' ? 'ide-cd,bus=ide.2' : 'ide-cd,bus=ide.1'},drive=cd,bootindex=1`);
    }
    (o.nics ?? []).forEach((nic, i) => {
      const netdev = nic.vde ? `vde,id=net${i},sock=${nic.vde}` : `hubport,id=net${i},hubid=${100 + i}`;
      const slot = nic.slot !== undefined ? `,addr=${nic.slot.toString(16)}` : '';
      const boot = nic.bootindex !== undefined ? `,bootindex=${nic.bootindex}` : '';
      const rom = nic.romfile !== undefined ? `,romfile=${nic.romfile}` : '';
      args.push('-netdev', netdev, '-device', `${nic.model ?? 'virtio-net-pci'},netdev=net${i},mac=${nic.mac}${slot}${boot}${rom}`);
    });
    if (o.disk) args.push('-drive', `if=virtio,format=raw,file=${o.disk}`);
    args.push('-rtc', `base=${o.rtcBase ?? 'utc'}`);
    args.push(...(o.extraArgs ?? []));
    return args;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Console text so far (carriage returns removed). */
  get consoleText(): string {
    return this.console;
  }

  /** Waits until console text after the last consumed point matches; consumes up to the match. */
  async waitForConsole(pattern: RegExp, timeoutSec = 120): Promise<RegExpMatchArray> {
    const deadline = performance.now() + timeoutSec * 1000;
    for (;;) {
      const rest = this.console.slice(this.cursor);
      const m = pattern.exec(rest);
      if (m) {
        this.cursor += m.index! + m[0].length;
        return m;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`${this.name}: VM exited while waiting for ${pattern}; console tail:\n${this.tail()}`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`${this.name}: timed out after ${timeoutSec}s waiting for ${pattern}; console tail:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.listeners.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  tail(lines = 25): string {
    return this.console.split('\n').slice(-lines).join('\n');
  }

  /** Types text on the serial console as a user would. */
  type(text: string): void {
    this.child.stdin!.write(text);
  }

  /** Waits for the root shell (returns its seconds since power-on), quiets kernel messages so they do not mix into output, then waits for the node's start to end. */
  async waitForShell(timeoutSec = 180): Promise<number> {
    await this.waitForConsole(/root@[\w-]+:[^\n]*# /, timeoutSec);
    const seconds = (performance.now() - this.startedAt) / 1000;
    // Tabs reach the log as tabs (agetty's tty expands them), kernel messages stay off the console,
    // and no job-control notice ("[1]+ Done ...") of a command's background job lands in a later
    // command's output (set +m).
    await this.succeed('stty tab0 <&1; dmesg -n 1; set +m');
    // The services that start beside the shell (/etc/openssi/later.d) have ended when
    // /run/boot-done is there: checks start from a node whose start is over.
    await this.succeed('i=0; while [ -x /etc/init.d/knoppix-autoconfig ] && [ ! -e /run/boot-done ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i+1)); done; [ $i -lt 240 ]', 150);
    return seconds;
  }

  /** Runs a shell command on the console; returns its exit status and output. */
  async execute(command: string, timeoutSec = 60): Promise<CommandResult> {
    const id = `OSL${++commandCounter}x${process.pid}`;
    // The typed line shows "id _B"; only the command's output shows "id_B".
    this.type(`printf '\\n%s%s\\n' ${id} _B; { ${command}\n} </dev/null 2>&1; printf '\\n%s_E%s\\n' ${id} $?\n`);
    const m = await this.waitForConsole(new RegExp(`${id}_B\\n([\\s\\S]*?)\\n?${id}_E(\\d+)\\n`), timeoutSec);
    return { status: Number(m[2]), output: m[1].replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '') };
  }

  /** Runs a command that must exit 0; returns its output. */
  async succeed(command: string, timeoutSec = 60): Promise<string> {
    const r = await this.execute(command, timeoutSec);
    if (r.status !== 0) throw new Error(`${this.name}: \`${command}\` exited ${r.status}:\n${r.output}`);
    return r.output;
  }

  /**
   * Runs a command every second until it exits 0 (a state that settles, such as a node's view of
   * the membership after its first heartbeats); returns its output.
   */
  async waitUntilSucceeds(command: string, timeoutSec = 60): Promise<string> {
    const deadline = performance.now() + timeoutSec * 1000;
    for (;;) {
      const r = await this.execute(command, timeoutSec);
      if (r.status === 0) return r.output;
      if (performance.now() >= deadline) throw new Error(`${this.name}: \`${command}\` still exits ${r.status} after ${timeoutSec}s:\n${r.output}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  /** Runs a command that must fail; returns its output. */
  async fail(command: string, timeoutSec = 60): Promise<string> {
    const r = await this.execute(command, timeoutSec);
    if (r.status === 0) throw new Error(`${this.name}: \`${command}\` succeeded but should have failed:\n${r.output}`);
    return r.output;
  }

  /** A PNG of the VGA console, through QMP. */
  async screenshot(file: string): Promise<void> {
    const qmp = await Qmp.connect(this.qmpPath);
    try {
      await qmp.execute('screendump', { filename: file, format: 'png' });
    } finally {
      qmp.close();
    }
  }

  /** Powers the VM off at once, like pulling the plug. */
  async stop(): Promise<void> {
    await stopTracked(this.child, 2000);
    await new Promise<void>((resolve) => this.log.end(resolve));
    await new Promise<void>((resolve) => this.timedLog.end(resolve));
  }
}
