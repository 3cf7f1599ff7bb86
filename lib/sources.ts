import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { textDigest } from './hash.ts';
import { projectRoot } from './paths.ts';

export interface ModuleSources {
  /** Every file the module imports, itself included, transitively (absolute paths, sorted). */
  files: string[];
  /** The npm packages it imports, with their installed versions. */
  packages: Record<string, string>;
}

const graphs = new Map<string, Promise<ModuleSources>>();

/**
 * What a module's code is made of: its import graph as esbuild resolves it (its metafile), so a
 * cache key built on it covers every file the code imports, with nothing listed by hand.
 */
export function moduleSources(module: string): Promise<ModuleSources> {
  const entry = module.startsWith('file:') ? fileURLToPath(module) : resolve(module);
  let graph = graphs.get(entry);
  if (!graph) {
    graph = importGraph(entry);
    graphs.set(entry, graph);
  }
  return graph;
}

async function importGraph(entry: string): Promise<ModuleSources> {
  const cwd = projectRoot;
  const result = await build({
    entryPoints: [entry], bundle: true, write: false, metafile: true, platform: 'node', format: 'esm',
    packages: 'external', logLevel: 'silent', absWorkingDir: cwd,
  });
  const inputs = result.metafile!.inputs;
  const files = Object.keys(inputs).map((p) => (isAbsolute(p) ? p : join(cwd, p))).sort();
  const packages: Record<string, string> = {};
  for (const input of Object.values(inputs)) {
    for (const imp of input.imports) {
      if (!imp.external || imp.path.startsWith('node:')) continue;
      const name = imp.path.startsWith('@') ? imp.path.split('/').slice(0, 2).join('/') : imp.path.split('/')[0];
      packages[name] ??= installedVersion(name, cwd);
    }
  }
  return { files, packages };
}

function installedVersion(name: string, cwd: string): string {
  try {
    return JSON.parse(readFileSync(join(cwd, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

/** A digest of a module's sources: the contents of every file it imports and the package versions. */
export async function sourcesDigest(module: string): Promise<string> {
  const { files, packages } = await moduleSources(module);
  return textDigest(JSON.stringify({ files: files.map((f) => textDigest(readFileSync(f, 'latin1'))), packages }));
}
