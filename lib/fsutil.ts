import { constants } from 'node:fs';
import { chmod, copyFile, cp, link, lstat, mkdir, readdir, rename, rm, symlink, utimes, lutimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from './exec.ts';
import { walk } from './hash.ts';

/**
 * The mode a file of a git checkout stands for: git keeps only the executable bit, the rest
 * comes from the umask of whoever cloned it. Folders 0755, files 0755 or 0644.
 */
export function gitMode(mode: number, isDir = false): number {
  return isDir || mode & 0o100 ? 0o755 : 0o644;
}

/**
 * Copies a folder tree over another, keeping symlinks as they are and file modes (with modes
 * 'git', the modes the checkout stands for: see gitMode). What is copied wins: a file or symlink
 * replaces whatever was at its path (fs.cp refuses a symlink over a file).
 */
export async function copyTree(source: string, dest: string, o: { modes?: 'all' | 'git' } = {}): Promise<void> {
  if (o.modes !== 'git' && (await readdir(dest).catch(() => [])).length === 0) {
    // Nothing to replace: cp does the same in one process (a remaster's two thousand files of
    // added packages took 4.5 s one by one here, 0.2 s with cp).
    await mkdir(dest, { recursive: true });
    await run('cp', ['-dR', '--preserve=mode', `${source}/.`, dest]);
    return;
  }
  await mkdir(dest, { recursive: true });
  const modeOf = (mode: number, isDir: boolean) => (o.modes === 'git' ? gitMode(mode, isDir) : mode);
  for (const e of await walk(source)) {
    const to = join(dest, e.path);
    const there = await lstat(to).catch(() => undefined);
    if (e.type === 'dir') {
      if (there && !there.isDirectory()) await rm(to, { force: true });
      await mkdir(to, { recursive: true });
      await chmod(to, modeOf(e.mode, true));
      continue;
    }
    if (there) await rm(to, { recursive: true, force: true });
    if (e.type === 'symlink') {
      await symlink(e.target!, to);
    } else {
      await cp(join(source, e.path), to, { preserveTimestamps: false });
      await chmod(to, modeOf(e.mode, false));
    }
  }
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

/** Sets every entry's times below dir (and dir itself) to epoch; with filesToo false, only folders' and symlinks'. */
export async function stampTree(dir: string, epoch: number, o: { filesToo?: boolean } = {}): Promise<void> {
  for (const e of (await walk(dir)).reverse()) {
    if (e.type === 'symlink') await lutimes(join(dir, e.path), epoch, epoch);
    else if (e.type === 'dir' || o.filesToo !== false) await utimes(join(dir, e.path), epoch, epoch);
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
