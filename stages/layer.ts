import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileDigest, walk } from '../lib/hash.ts';
import { makeSquashfs } from '../iso/squashfs.ts';

export interface LayerFile { path: string; type: 'file' | 'dir' | 'symlink' | 'whiteout'; mode: number; sha256?: string; target?: string }

/**
 * Packs a folder as a layer image (every file root's, every time the epoch) and records its files
 * in files.json beside it, for the build manifest.
 */
export async function packLayer(tree: string, outDir: string, epoch: number, hide: string[] = []): Promise<void> {
  await makeSquashfs(tree, join(outDir, 'layer.squashfs'), { epoch, allRoot: true, whiteouts: hide });
  const files: LayerFile[] = [];
  for (const e of await walk(tree)) {
    files.push({
      path: e.path, type: e.type, mode: e.mode,
      ...(e.type === 'file' ? { sha256: await fileDigest(join(tree, e.path)) } : {}),
      ...(e.target !== undefined ? { target: e.target } : {}),
    });
  }
  for (const path of hide) files.push({ path: path.replace(/^\/+/, ''), type: 'whiteout', mode: 0 });
  await writeFile(join(outDir, 'files.json'), `${JSON.stringify(files, null, 1)}\n`);
}

export async function readLayerFiles(outDir: string): Promise<LayerFile[]> {
  return JSON.parse(await readFile(join(outDir, 'files.json'), 'utf8'));
}
