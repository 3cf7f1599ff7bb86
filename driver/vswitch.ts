import { type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTracked, stopTracked } from './processes.ts';
import { requireTools } from '../lib/exec.ts';

/** A private virtual Ethernet switch (vde_switch on a unix socket): the cluster interconnect. */
export class VSwitch {
  private constructor(readonly socket: string, private child: ChildProcess) {}

  static async start(dir: string, name = 'interconnect'): Promise<VSwitch> {
    requireTools(['vde_switch'], 'npm run boot');
    const socket = join(dir, `${name}.vde`);
    // Its stdin stays open: vde_switch reads console commands there and quits at end of input.
    const child = startTracked(`vde_switch ${name}`, 'vde_switch', ['--sock', socket, '--numports', '64'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const deadline = Date.now() + 5000;
    while (!existsSync(join(socket, 'ctl'))) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`vde_switch did not start (socket ${socket})`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return new VSwitch(socket, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    await stopTracked(this.child);
  }
}
