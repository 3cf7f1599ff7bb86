import { execa, type Options, type Result } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UserError } from './errors.ts';
import { hostPrograms } from './host.ts';

const packageOf = (tool: string): string | undefined => hostPrograms[tool]?.package;

/** Aborting this stops every tool still running (Ctrl-C during a build). */
export const stopAll = new AbortController();

/** Runs a host tool with an argument array; a failure names the tool and shows its stderr tail. */
export async function run(tool: string, args: readonly string[], options: Options = {}): Promise<Result> {
  try {
    return await execa(tool, args, { stdin: 'ignore', cancelSignal: stopAll.signal, ...options });
  } catch (error: any) {
    if (error?.code === 'ENOENT') {
      const pkg = packageOf(tool);
      throw new UserError(`host tool '${tool}' not found${pkg ? ` (Debian package ${pkg})` : ''}`);
    }
    if (error?.isCanceled || stopAll.signal.aborted) throw new UserError('interrupted');
    const stderr = String(error?.stderr ?? '').trim().split('\n').slice(-12).join('\n');
    const e = new Error(`${tool} failed (exit ${error?.exitCode ?? error?.signal}): ${tool} ${args.join(' ')}\n${stderr}`);
    (e as any).stderr = error?.stderr;
    throw e;
  }
}

/** Runs a tool and returns its stdout as a string. */
export async function output(tool: string, args: readonly string[], options: Options = {}): Promise<string> {
  const r = await run(tool, args, options);
  return String(r.stdout);
}

/** Whether a program is on PATH (executable). */
export function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).filter(Boolean).some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Fails with one line naming every missing host tool and the Debian package that brings it. */
export function requireTools(tools: string[], command = 'npm run build'): void {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length === 0) return;
  const named = missing.map((t) => (packageOf(t) ? `${t} (Debian package ${packageOf(t)})` : t));
  throw new UserError(`missing host tools: ${named.join(', ')}; \`${command}\` installs them`);
}
