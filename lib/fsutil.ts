import { constants } from 'node:fs';
import { copyFile, cp, link, mkdir, rename, rm, utimes, lutimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { walk } from './hash.ts';

/** Copies a folder tree, keeping symlinks as they are and file modes. */
export async function copyTree(source: string, dest: string): Promise<void> {
  await cp(source, dest, { recursive: true, verbatimSymlinks: true, force: true, errorOnExist: false });
}

/** Hard-links a file (same filesystem) or copies it where linking is not possible. */
export async function linkOrCopy(source: string, dest: string): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  await rm(dest, { force: true });
  try {
    await link(source, dest);
  } catch {
    await copyFile(source, dest, constants.COPYFILE_FICLONE);
  }
}

/** Sets every entry's times below dir (and dir itself) to epoch. */
export async function stampTree(dir: string, epoch: number): Promise<void> {
  for (const e of (await walk(dir)).reverse()) {
    if (e.type === 'symlink') await lutimes(join(dir, e.path), epoch, epoch);
    else await utimes(join(dir, e.path), epoch, epoch);
  }
  await utimes(dir, epoch, epoch);
}

/**
 * Puts source at dest, never half a file. A hard link when both are on one filesystem (an ISO
 * of gigabytes costs nothing; a later build replaces dest, never writes into it), else a copy
 * through a temporary name in the same folder.
 */
export async function publish(source: string, dest: string): Promise<void> {
  // Unlink, then link: ext4 flushes a file renamed over another (auto_da_alloc), which costs a
  // third of a second for a fresh gigabyte ISO; a link is as atomic for the new name.
  await rm(dest, { force: true });
  if (await link(source, dest).then(() => true, () => false)) return;
  const tmp = join(dirname(dest), `.${Date.now()}.tmp-${process.pid}-${dest.split('/').pop()}`);
  try {
    await copyFile(source, tmp, constants.COPYFILE_FICLONE);
    await rename(tmp, dest);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}
