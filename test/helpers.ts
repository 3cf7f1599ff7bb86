import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../lib/paths.ts';

export interface CliResult { code: number; stdout: string; stderr: string }

/** Runs build.ts as a user would (through tsx), with extra environment. */
export function buildCli(args: string[], env: Record<string, string> = {}, cwd = projectRoot, onSpawn?: (pid: number) => void): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(cwd, 'build.ts'), ...args], {
      cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    if (child.pid !== undefined) onSpawn?.(child.pid);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal === 'SIGINT' ? 130 : 1), stdout, stderr }));
  });
}

/** Names in a folder that look like partial output: temporaries of ours or xorriso's. */
export async function leftovers(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => /tmp/.test(n));
}

const scratchDirs: string[] = [];
process.on('exit', () => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system's temporary folder, removed when the test file's process ends, passed or failed. */
export async function scratch(prefix: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
}
