/** Compression of a stream, from its magic bytes. */
export function compressionOf(head: Buffer): string {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.readUInt32LE(0) === 0x184c2102) return 'lz4';
  if (head.toString('latin1', 0, 3) === 'BZh') return 'bzip2';
  if (head[0] === 0x5d && head[1] === 0 && head[2] === 0) return 'lzma';
  if (head.toString('latin1', 0, 6) === '070701' || head.toString('latin1', 0, 6) === '070702') return 'none';
  return 'unknown';
}

export interface InitrdPart { offset: number; kind: 'cpio' | 'compressed'; compression: string; files?: string[] }

/**
 * The parts of an initrd: uncompressed cpio archives in front (early microcode, say), then the
 * compressed main archive. The kernel unpacks them in that order; a remaster must keep them.
 */
export function initrdParts(buf: Buffer): InitrdPart[] {
  const parts: InitrdPart[] = [];
  let off = 0;
  while (off + 6 <= buf.length && compressionOf(buf.subarray(off, off + 8)) === 'none') {
    const start = off;
    const files: string[] = [];
    for (;;) {
      const field = (i: number) => parseInt(buf.toString('latin1', off + 6 + i * 8, off + 14 + i * 8), 16);
      const size = field(6);
      const nameSize = field(11);
      const name = buf.toString('latin1', off + 110, off + 110 + nameSize - 1);
      off += 110 + nameSize;
      off += (4 - (off % 4)) % 4;
      off += size;
      off += (4 - (off % 4)) % 4;
      if (name === 'TRAILER!!!' || off >= buf.length) break;
      files.push(name);
    }
    parts.push({ offset: start, kind: 'cpio', compression: 'none', files });
    while (off < buf.length && buf[off] === 0) off++; // padding between archives
  }
  if (off < buf.length) parts.push({ offset: off, kind: 'compressed', compression: compressionOf(buf.subarray(off, off + 8)) });
  return parts;
}
