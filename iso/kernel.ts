import { open } from 'node:fs/promises';

/**
 * The version of an x86 Linux kernel image (bzImage), from its setup header: "HdrS" at 0x202
 * and, at 0x20e, the offset (less 0x200) of a string that starts with the release.
 */
export async function bzImageRelease(file: string, offset = 0): Promise<string | undefined> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(0x210);
    await fh.read(head, 0, 0x210, offset);
    if (head.toString('latin1', 0x202, 0x206) !== 'HdrS') return undefined;
    const at = head.readUInt16LE(0x20e) + 0x200;
    const text = Buffer.alloc(256);
    await fh.read(text, 0, 256, offset + at);
    return /^(\S+)/.exec(text.toString('latin1'))?.[1];
  } finally {
    await fh.close();
  }
}
