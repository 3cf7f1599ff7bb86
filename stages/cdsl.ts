import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/**
 * Node 1's folders for CDSL paths ("/var/log/" a folder, "/etc/hostname" a file), made in a
 * layer's tree: the CD's /etc/openssi/node points at /cluster/node1, so a CDSL resolves from the
 * first moment of boot, before the node's boot scripts run (as the image's cdsl-folders does).
 */
export async function nodeOneCdslFolders(tree: string, paths: string[]): Promise<void> {
  for (const path of paths.map((p) => p.trim()).filter((p) => p.startsWith('/'))) {
    const folder = path.endsWith('/') ? path : dirname(path);
    await mkdir(join(tree, 'cluster', 'node1', folder), { recursive: true });
  }
}
