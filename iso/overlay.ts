import { lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { run, output } from '../lib/exec.ts';

/**
 * Lays an unpacked layer over an unpacked root as overlayfs would show them: a whiteout
 * (character device 0:0) removes that path from the root, everything else is copied over.
 * The layer folder is consumed (its whiteouts are deleted).
 */
export async function mergeLayer(root: string, layer: string): Promise<void> {
  const devices = (await output('find', [layer, '-type', 'c', '-printf', '%P\\n'], { maxBuffer: 64 << 20 })).split('\n').filter(Boolean);
  for (const path of devices) {
    const st = await lstat(join(layer, path));
    if (st.rdev !== 0) continue;
    await rm(join(root, path), { recursive: true, force: true });
    await rm(join(layer, path));
  }
  // Where the layer has a file and the root a folder, or the other way round, the layer's
  // entry replaces the root's whole (overlayfs shows only the upper one).
  const kinds = (await output('find', [layer, '-mindepth', '1', '-printf', '%y %P\\n'], { maxBuffer: 256 << 20 })).split('\n').filter(Boolean);
  for (const line of kinds) {
    const isDir = line[0] === 'd';
    const path = line.slice(2);
    const below = await lstat(join(root, path)).catch(() => undefined);
    if (below && below.isDirectory() !== isDir) await rm(join(root, path), { recursive: true, force: true });
  }
  await run('cp', ['-a', '--remove-destination', `${layer}/.`, root]);
}
