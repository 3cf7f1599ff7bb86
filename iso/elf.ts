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

interface SectionHeader { name: string; type: number; offset: number; size: number; link: number }

/** The section headers of a 64-bit little-endian ELF file, named; none for anything else. */
function sectionHeaders(data: Buffer): SectionHeader[] {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2 || data[5] !== 1) return [];
  const shoff = Number(data.readBigUInt64LE(40));
  const shentsize = data.readUInt16LE(58);
  const shnum = data.readUInt16LE(60);
  const shstrndx = data.readUInt16LE(62);
  if (shoff === 0 || shoff + shnum * shentsize > data.length) return [];
  const raw = Array.from({ length: shnum }, (_, i) => {
    const o = shoff + i * shentsize;
    return {
      nameAt: data.readUInt32LE(o), type: data.readUInt32LE(o + 4), offset: Number(data.readBigUInt64LE(o + 24)),
      size: Number(data.readBigUInt64LE(o + 32)), link: data.readUInt32LE(o + 40),
    };
  });
  const names = raw[shstrndx]?.offset ?? 0;
  return raw.map(({ nameAt, ...h }) => ({ ...h, name: data.toString('latin1', names + nameAt, data.indexOf(0, names + nameAt)) }));
}

/** The contents of a named section of a 64-bit little-endian ELF file, or undefined. */
export function elfSection(data: Buffer, name: string): Buffer | undefined {
  const h = sectionHeaders(data).find((s) => s.name === name);
  return h && data.subarray(h.offset, h.offset + h.size);
}

/** The symbols of a 64-bit little-endian ELF file's .symtab: name, and whether it is defined here. */
export function elfSymbols(data: Buffer): { name: string; defined: boolean }[] {
  const SHT_SYMTAB = 2;
  const headers = sectionHeaders(data);
  const table = headers.find((h) => h.type === SHT_SYMTAB);
  if (!table) return [];
  const strings = headers[table.link];
  const symbols: { name: string; defined: boolean }[] = [];
  // Entry 0 is the null symbol; each entry is 24 bytes (st_name, st_info, st_other, st_shndx, ...).
  for (let o = table.offset + 24; o + 24 <= table.offset + table.size; o += 24) {
    const start = strings.offset + data.readUInt32LE(o);
    symbols.push({ name: data.toString('latin1', start, data.indexOf(0, start)), defined: data.readUInt16LE(o + 6) !== 0 });
  }
  return symbols;
}
