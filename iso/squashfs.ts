import { open } from 'node:fs/promises';
import { run, output } from '../lib/exec.ts';

export interface SquashfsOptions {
  /** Every inode's time and the filesystem's creation time (reproducible output). */
  epoch: number;
  /** mksquashfs compressor and level, e.g. ['zstd', 10]. */
  compression?: [string, number?];
  /** Make every file owned by root (folders from a checkout carry the builder's uid). */
  allRoot?: boolean;
  /** Paths to add as overlayfs whiteouts (character device 0:0): they hide the layers below. */
  whiteouts?: string[];
}

/** Packs a folder into a squashfs image. */
export async function makeSquashfs(source: string, image: string, o: SquashfsOptions): Promise<void> {
  const [comp, level] = o.compression ?? ['zstd', 10];
  const args = [source, image, '-noappend', '-quiet', '-no-progress', '-comp', comp];
  if (level !== undefined) args.push('-Xcompression-level', String(level));
  args.push('-mkfs-time', String(o.epoch), '-all-time', String(o.epoch), '-no-xattrs');
  if (o.allRoot) args.push('-all-root');
  for (const path of o.whiteouts ?? []) args.push('-p', `${path.replace(/^\/+/, '')} c 0000 0 0 0 0`);
  // mksquashfs refuses SOURCE_DATE_EPOCH together with -mkfs-time: the options say it already.
  const env = { ...process.env };
  delete env.SOURCE_DATE_EPOCH;
  await run('mksquashfs', args, { env, extendEnv: false });
}

/** Extracts some paths (or all) from an image into dest. */
export async function extractSquashfs(image: string, dest: string, paths: string[] = []): Promise<void> {
  await run('unsquashfs', ['-no-progress', '-quiet', '-no-xattrs', '-f', '-d', dest, image, ...paths]);
}

/** Paths in an image below a folder, '/'-separated and without a leading slash. */
export async function listSquashfs(image: string, below = ''): Promise<string[]> {
  const text = await output('unsquashfs', ['-no-progress', '-lc', '-d', '', image, ...(below ? [below] : [])], { maxBuffer: 512 << 20 });
  return text.split('\n').filter((l) => l.startsWith('/')).map((l) => l.slice(1));
}

/** The compressor named in a squashfs superblock, or undefined when the file is not squashfs. */
export async function squashfsCompressor(image: string, offset = 0): Promise<string | undefined> {
  const fh = await open(image, 'r');
  try {
    const buf = Buffer.alloc(96);
    await fh.read(buf, 0, 96, offset);
    if (buf.toString('latin1', 0, 4) !== 'hsqs') return undefined;
    const id = buf.readUInt16LE(20);
    return ({ 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' } as Record<number, string>)[id] ?? `unknown(${id})`;
  } finally {
    await fh.close();
  }
}
