import { existsSync } from 'node:fs';
import deps from './host-deps.json' with { type: 'json' };
import { UserError } from './errors.ts';

/** The npm command whose setup installs a dependency (`npm test` installs all of them). */
export type HostCommand = 'build' | 'boot' | 'test';
export interface HostDep { package: string; for: HostCommand }
export type HostFileName = keyof typeof deps.files;

/** Host programs by name, with their Debian package: the one list setup.mjs installs from. */
export const hostPrograms: Record<string, HostDep> = deps.programs as Record<string, HostDep>;

/** Host files by name (boot loaders, firmware, iPXE...), with their path and Debian package. */
export const hostFiles = deps.files as Record<HostFileName, HostDep & { path: string }>;

/** The path of a host file; the file itself is checked by requireHostFiles. */
export function hostFile(name: HostFileName): string {
  return hostFiles[name].path;
}

const npmCommand: Record<HostCommand, string> = { build: 'npm run build', boot: 'npm run boot', test: 'npm test' };

/** One line naming every missing host file and what installs it, before anything starts. */
export function requireHostFiles(names: HostFileName[]): void {
  requireFiles(names.map((n) => hostFiles[n]));
}

/** requireHostFiles for any entries (the test gives one that is missing). */
export function requireFiles(entries: (HostDep & { path: string })[]): void {
  const missing = entries.filter((e) => !existsSync(e.path));
  if (missing.length === 0) return;
  const named = missing.map((e) => `${e.path} is missing: install Debian's ${e.package}`);
  throw new UserError(`${named.join('; ')} (\`${npmCommand[missing[0].for]}\` installs it)`);
}
