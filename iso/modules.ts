import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { elfSection } from './elf.ts';
import { decompress } from './initrd.ts';

/** A module's name as modprobe knows it: file name less .ko(.xz|.zst|.gz), '-' read as '_'. */
export function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

export interface ModuleIndex {
  /** name → path relative to the modules folder */
  paths: Map<string, string>;
  /** path → paths it depends on */
  deps: Map<string, string[]>;
  builtin: Set<string>;
}

/** Reads modules.dep and modules.builtin of lib/modules/<kver>. */
export async function readModuleIndex(modulesDir: string): Promise<ModuleIndex> {
  const paths = new Map<string, string>();
  const deps = new Map<string, string[]>();
  for (const line of (await readFile(join(modulesDir, 'modules.dep'), 'utf8')).split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    paths.set(moduleName(m[1]), m[1]);
    deps.set(m[1], m[2].split(/\s+/).filter(Boolean));
  }
  const builtinFile = join(modulesDir, 'modules.builtin');
  const builtin = new Set(
    existsSync(builtinFile) ? (await readFile(builtinFile, 'utf8')).split('\n').filter(Boolean).map(moduleName) : [],
  );
  return { paths, deps, builtin };
}

/**
 * The module files needed to load the named modules, dependencies included: `files` in a stable
 * order, `order` as they must load (each after what it depends on, then the names' order).
 * Names built into the kernel need nothing; names the kernel does not have are returned apart.
 */
export function moduleClosure(index: ModuleIndex, names: string[]): { files: string[]; order: string[]; missing: string[] } {
  const order: string[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  const visit = (path: string) => {
    if (seen.has(path)) return;
    seen.add(path);
    for (const dep of index.deps.get(path) ?? []) visit(dep);
    order.push(path);
  };
  for (const raw of names) {
    const name = raw.replace(/-/g, '_');
    const path = index.paths.get(name);
    if (path) visit(path);
    else if (!index.builtin.has(name)) missing.push(raw);
  }
  return { files: [...order].sort(), order, missing };
}

const compressions: Record<string, string> = { '.xz': 'xz', '.zst': 'zstd', '.gz': 'gzip' };

/** A module file's ELF bytes: .ko as it is, .ko.xz, .ko.zst and .ko.gz decompressed. */
export async function readModule(path: string): Promise<Buffer> {
  const suffix = Object.keys(compressions).find((s) => path.endsWith(s));
  return suffix ? decompress(await readFile(path), compressions[suffix]) : readFile(path);
}

/** A module of the kernel to read its vermagic from (relative to its modules folder). */
export function vermagicSample(index: ModuleIndex): string {
  return index.paths.get('isofs') ?? [...index.paths.values()][0];
}

/** A kernel module's .modinfo items (vermagic, alias, ...) as key and value, in the file's order. */
export function modinfoFields(ko: Buffer): [string, string][] {
  const section = elfSection(ko, '.modinfo');
  if (!section) throw new Error('not a kernel module (no .modinfo section)');
  return section.toString('latin1').split('\0').flatMap((item): [string, string][] => {
    const eq = item.indexOf('=');
    return eq > 0 ? [[item.slice(0, eq), item.slice(eq + 1)]] : [];
  });
}

/** A kernel module's .modinfo fields (vermagic, name, license, ...), as modinfo shows them: the first of each. */
export function modinfo(ko: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  for (const [key, value] of modinfoFields(ko)) if (!fields.has(key)) fields.set(key, value);
  return fields;
}
