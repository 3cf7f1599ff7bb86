import { run, output } from '../lib/exec.ts';
import { extractSquashfs, listSquashfs } from './squashfs.ts';

/** A root filesystem to read: a squashfs (possibly inside a bigger file) or an ISO 9660 image. */
export interface RootImage { file: string; offset: number; format: 'squashfs' | 'iso9660' }

/** Extracts some paths (absent ones are skipped), or with none all of it, from a root image into dest. */
export async function extractRoot(image: RootImage, dest: string, paths: string[] = []): Promise<void> {
  if (image.format === 'squashfs') {
    if (image.offset === 0) return extractSquashfs(image.file, dest, paths);
    await run('unsquashfs', ['-no-progress', '-quiet', '-no-xattrs', '-f', '-o', String(image.offset), '-d', dest, image.file, ...paths]);
    return;
  }
  // A path missing from the image is a FAILURE to xorriso; go on past it (the caller checks
  // that what it needs arrived), stopping only at FATAL.
  const what = paths.length ? ['-extract_l', '/', dest, ...paths.map((p) => `/${p}`), '--'] : ['-extract', '/', dest];
  const stopAt = paths.length ? 'FATAL' : 'FAILURE';
  // A whole root needs its device nodes (/dev/console before devtmpfs is mounted); reading in
  // LBA order keeps a CD-sized image streaming.
  const osirrox = paths.length ? 'on' : 'device_files:sort_lba_on';
  await run('xorriso', ['-abort_on', stopAt, '-return_with', stopAt, '32', '-osirrox', osirrox, '-indev', image.file, ...what]);
}

/** Every path in a root image, without the leading slash. */
export async function listRoot(image: RootImage): Promise<string[]> {
  if (image.format === 'squashfs') {
    if (image.offset === 0) return listSquashfs(image.file);
    const text = await output('unsquashfs', ['-no-progress', '-lc', '-o', String(image.offset), '-d', '', image.file], { maxBuffer: 512 << 20 });
    return text.split('\n').filter((l) => l.startsWith('/')).map((l) => l.slice(1));
  }
  const text = await output('xorriso', ['-indev', image.file, '-find', '/', '-not', '-type', 'd'], { maxBuffer: 512 << 20 });
  return text.split('\n').filter((l) => l.startsWith("'/")).map((l) => l.slice(2, -1));
}
