import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';

/** Where the list lies in the ISO tree; node 1's /usr/lib/openssi/serve-netboot reads it there. */
export const netbootListPath = 'openssi/netboot.list';

/** A root image: its path on the CD, format and checksum (hex: md5, or sha256 by its length). */
export interface NetbootImage { path: string; format: 'squashfs' | 'cloop'; checksum: string }

/**
 * What a netbooted node loads, as paths on the CD: the kernel, the netboot initrd, and the root
 * images bottom first with their formats and checksums. Node 1 serves exactly these.
 */
export async function writeNetbootList(file: string, o: { kernel: string; initrd: string; images: NetbootImage[] }): Promise<void> {
  await writeFile(file, [
    '# What a netbooted node loads from node 1 (openssi-live writes this; serve-netboot reads it)',
    `kernel ${o.kernel}`,
    `initrd ${o.initrd}`,
    ...o.images.map((i) => `image ${i.format} ${i.checksum} ${i.path}`),
    '',
  ].join('\n'));
}

/** md5 of a byte range of a file (an image inside an ISO). */
export async function rangeMd5(file: string, offset: number, size: number): Promise<string> {
  const hash = createHash('md5');
  if (size > 0) for await (const chunk of createReadStream(file, { start: offset, end: offset + size - 1, highWaterMark: 1 << 20 })) hash.update(chunk);
  return hash.digest('hex');
}
