import { run } from '../lib/exec.ts';
import { readNewc, type NewcMember } from './cpio.ts';

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
    const archive = readNewc(buf, off);
    const files = archive.members.map((m) => m.path);
    off = archive.end;
    parts.push({ offset: start, kind: 'cpio', compression: 'none', files });
    while (off < buf.length && buf[off] === 0) off++; // padding between archives
  }
  if (off < buf.length) parts.push({ offset: off, kind: 'compressed', compression: compressionOf(buf.subarray(off, off + 8)) });
  return parts;
}

/** Each compression the kernel unpacks an initramfs from: the tool, and its flags to compress. */
const tools: Record<string, { tool: string; compress: string[] }> = {
  gzip: { tool: 'gzip', compress: ['-9', '-n'] },
  // The kernel's xz decoder knows CRC32 only.
  xz: { tool: 'xz', compress: ['--check=crc32', '-9'] },
  zstd: { tool: 'zstd', compress: ['-19', '-q'] },
  // The kernel reads lz4's legacy frame format only.
  lz4: { tool: 'lz4', compress: ['-l', '-9', '-q'] },
  lzma: { tool: 'lzma', compress: ['-9'] },
  bzip2: { tool: 'bzip2', compress: ['-9'] },
};

function toolFor(compression: string) {
  const t = tools[compression];
  if (!t) throw new Error(`initrd: cannot handle ${compression} compression`);
  return t;
}

/** One compressed stream unpacked (stdin to stdout of the compression's own tool). */
export async function decompress(buf: Buffer, compression: string): Promise<Buffer> {
  if (compression === 'none') return buf;
  const r = await run(toolFor(compression).tool, ['-dc'], { stdin: buf, encoding: 'buffer', stripFinalNewline: false, maxBuffer: 1 << 30 });
  return Buffer.from(r.stdout as unknown as Uint8Array);
}

/** Bytes compressed the way the kernel reads them; the same bytes always give the same output. */
export async function compress(buf: Buffer, compression: string): Promise<Buffer> {
  if (compression === 'none') return buf;
  const t = toolFor(compression);
  const r = await run(t.tool, [...t.compress, '-c'], { stdin: buf, encoding: 'buffer', stripFinalNewline: false, maxBuffer: 1 << 30 });
  return Buffer.from(r.stdout as unknown as Uint8Array);
}

/** Every member of an initrd, all its parts unpacked in the kernel's order (later ones win). */
export async function initrdMembers(buf: Buffer): Promise<Map<string, NewcMember>> {
  const members = new Map<string, NewcMember>();
  const parts = initrdParts(buf);
  for (const [i, part] of parts.entries()) {
    const end = parts[i + 1]?.offset ?? buf.length;
    const raw = part.kind === 'cpio' ? buf.subarray(part.offset, end) : await decompress(buf.subarray(part.offset, end), part.compression);
    for (const m of listNewcAll(raw)) members.set(m.path.replace(/^\.?\/+/, ''), m);
  }
  return members;
}

/** Members of one or more newc archives laid end to end (an unpacked part may hold several). */
function listNewcAll(raw: Buffer): NewcMember[] {
  const out: NewcMember[] = [];
  let off = 0;
  while (off + 110 <= raw.length) {
    if (raw[off] === 0) { off++; continue; } // padding between archives
    const archive = readNewc(raw, off);
    out.push(...archive.members);
    off = archive.end;
  }
  return out;
}

/**
 * An initrd with one more archive after it, compressed like the initrd's main part. Everything
 * before stays byte for byte (an early-microcode cpio in front included); the kernel unpacks the
 * new archive last, so its members replace those of the same name.
 */
export async function appendToInitrd(initrd: Buffer, archive: Buffer): Promise<Buffer> {
  const parts = initrdParts(initrd);
  const main = parts[parts.length - 1];
  const compression = main?.kind === 'compressed' ? main.compression : 'none';
  // An uncompressed archive must start 4-byte aligned; the kernel skips zeros before it.
  const padding = Buffer.alloc(compression === 'none' ? (4 - (initrd.length % 4)) % 4 : 0);
  return Buffer.concat([initrd, padding, await compress(archive, compression)]);
}
