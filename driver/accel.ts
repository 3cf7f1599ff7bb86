import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

export type AccelChoice = 'auto' | 'tcg' | 'kvm';

/**
 * Whether KVM really runs guests here: boots `kernel` with no root under KVM and waits a few
 * seconds for its panic message. On some hosts /dev/kvm exists but guests hang; those get TCG.
 */
export async function kvmWorks(kernel: string, timeoutMs = 8000): Promise<boolean> {
  if (!existsSync('/dev/kvm')) return false;
  return new Promise((resolve) => {
    const child = spawn('qemu-system-x86_64', [
      '-accel', 'kvm', '-machine', 'pc', '-m', '256', '-nodefaults', '-display', 'none', '-no-reboot',
      '-serial', 'stdio', '-kernel', kernel, '-append', 'console=ttyS0 panic=-1 loglevel=4',
    ], { stdio: ['ignore', 'pipe', 'ignore'] });
    let text = '';
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    child.stdout.on('data', (chunk) => {
      text += chunk;
      if (/Kernel panic|Unable to mount root/.test(text)) finish(true);
    });
    child.on('exit', () => finish(/Kernel panic|Unable to mount root/.test(text)));
    child.on('error', () => finish(false));
  });
}

let probed: Promise<'tcg' | 'kvm'> | undefined;

/** TCG unless asked for KVM, or `auto` and the probe shows KVM works (probed once a process). */
export async function chooseAccel(choice: AccelChoice, kernel: string): Promise<'tcg' | 'kvm'> {
  if (choice !== 'auto') return choice;
  probed ??= kvmWorks(kernel).then((ok) => (ok ? 'kvm' : 'tcg'));
  return probed;
}
