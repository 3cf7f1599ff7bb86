import { closeSync, openSync, readSync } from 'node:fs';

/** True for a 64-bit little-endian ELF executable without a PT_INTERP header (statically linked). */
export function isStaticElf(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return false;
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === 3) return false; // PT_INTERP
    return true;
  } finally {
    closeSync(fd);
  }
}

/** The contents of a named section of a 64-bit little-endian ELF file, or undefined. */
export function elfSection(data: Buffer, name: string): Buffer | undefined {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2 || data[5] !== 1) return undefined;
  const shoff = Number(data.readBigUInt64LE(40));
  const shentsize = data.readUInt16LE(58);
  const shnum = data.readUInt16LE(60);
  const shstrndx = data.readUInt16LE(62);
  if (shoff === 0 || shoff + shnum * shentsize > data.length) return undefined;
  const header = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: data.readUInt32LE(o), offset: Number(data.readBigUInt64LE(o + 24)), size: Number(data.readBigUInt64LE(o + 32)) };
  };
  const strtab = header(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    const start = strtab.offset + h.name;
    const end = data.indexOf(0, start);
    if (data.toString('latin1', start, end) === name) return data.subarray(h.offset, h.offset + h.size);
  }
  return undefined;
}

/** The symbols of a 64-bit little-endian ELF file's .symtab: name, and whether it is defined here. */
export function elfSymbols(data: Buffer): { name: string; defined: boolean }[] {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2 || data[5] !== 1) return [];
  const shoff = Number(data.readBigUInt64LE(40));
  const shentsize = data.readUInt16LE(58);
  const shnum = data.readUInt16LE(60);
  if (shoff === 0 || shoff + shnum * shentsize > data.length) return [];
  const header = (i: number) => {
    const o = shoff + i * shentsize;
    return { type: data.readUInt32LE(o + 4), offset: Number(data.readBigUInt64LE(o + 24)), size: Number(data.readBigUInt64LE(o + 32)), link: data.readUInt32LE(o + 40) };
  };
  const SHT_SYMTAB = 2;
  for (let i = 0; i < shnum; i++) {
    const table = header(i);
    if (table.type !== SHT_SYMTAB) continue;
    const strings = header(table.link);
    const symbols: { name: string; defined: boolean }[] = [];
    // Entry 0 is the null symbol; each entry is 24 bytes (st_name, st_info, st_other, st_shndx, ...).
    for (let o = table.offset + 24; o + 24 <= table.offset + table.size; o += 24) {
      const start = strings.offset + data.readUInt32LE(o);
      symbols.push({ name: data.toString('latin1', start, data.indexOf(0, start)), defined: data.readUInt16LE(o + 6) !== 0 });
    }
    return symbols;
  }
  return [];
}
