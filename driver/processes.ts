import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

/**
 * Every VM and switch the driver starts, by pid, so that they are stopped however the test ends:
 * normally, by an exception, or by the process exiting.
 */
const running = new Map<number, { name: string; child: ChildProcess }>();

export function startTracked(name: string, cmd: string, args: string[], options: SpawnOptions): ChildProcess {
  const child = spawn(cmd, args, { ...options, detached: false });
  if (child.pid !== undefined) {
    running.set(child.pid, { name, child });
    child.once('exit', () => running.delete(child.pid!));
  }
  return child;
}

/** Stops one process: SIGTERM, then SIGKILL if it is still there after `graceMs`. */
export async function stopTracked(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export function trackedPids(): { pid: number; name: string }[] {
  return [...running].map(([pid, { name }]) => ({ pid, name }));
}

function killAllNow(): void {
  for (const pid of running.keys()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

process.on('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllNow();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}
