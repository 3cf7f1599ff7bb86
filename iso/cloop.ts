import { copyFile, rm, stat, truncate } from 'node:fs/promises';
import { run } from '../lib/exec.ts';
import { UserError } from '../lib/errors.ts';

const blockSize = 131072;

/** Unpacks a cloop image to the filesystem image inside it; a damaged image is one clear error. */
export async function extractCloop(image: string, dest: string, what = image): Promise<void> {
  try {
    await run('extract_compressed_fs', [image, dest]);
  } catch (error: any) {
    const why = String(error?.stderr ?? '').split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? 'unreadable';
    throw new UserError(`${what}: not a readable cloop image (${why})`);
  }
}

/**
 * Packs a filesystem image into a cloop image (128 KiB blocks, as KNOPPIX's; level 0 stores
 * blocks as they are). create_compressed_fs wants whole blocks, so a short image is padded
 * (squashfs and ISO 9660 both ignore bytes past their end).
 */
export async function makeCloop(image: string, dest: string, level = 9): Promise<void> {
  const size = (await stat(image)).size;
  let input = image;
  if (size % blockSize !== 0) {
    input = `${dest}.padded`;
    await copyFile(image, input);
    await truncate(input, Math.ceil(size / blockSize) * blockSize);
  }
  try {
    await run('create_compressed_fs', ['-q', '-B', String(blockSize), '-L', String(level), input, dest]);
  } finally {
    if (input !== image) await rm(input, { force: true });
  }
}
