import { access, open, stat, writeFile } from 'node:fs/promises';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../lib/errors.ts';
import { output } from '../lib/exec.ts';
import { isIso9660 } from './xorriso.ts';

const sector = 2048;

/** Whether volume descriptor 17 is an El Torito boot record (how a CD says it can boot). */
export async function hasElToritoRecord(iso: string): Promise<boolean> {
  const fh = await open(iso, 'r');
  try {
    const buf = Buffer.alloc(32);
    const { bytesRead } = await fh.read(buf, 0, 32, 17 * sector);
    return bytesRead === 32 && buf[0] === 0 && buf.toString('latin1', 1, 6) === 'CD001' &&
      buf.toString('latin1', 7, 30) === 'EL TORITO SPECIFICATION';
  } finally {
    await fh.close();
  }
}

/** The volume space size of an ISO's primary volume descriptor, in 2048-byte blocks. */
async function volumeBlocks(iso: string): Promise<number> {
  const fh = await open(iso, 'r');
  try {
    const buf = Buffer.alloc(4);
    await fh.read(buf, 0, 4, 16 * sector + 80);
    return buf.readUInt32LE(0);
  } finally {
    await fh.close();
  }
}

/** Every file path in an ISO (Rock Ridge names), without the leading slash. */
export async function isoFiles(iso: string): Promise<string[]> {
  const text = await output('xorriso', ['-indev', iso, '-find', '/', '-type', 'f'], { maxBuffer: 256 << 20 });
  return text.split('\n').filter((l) => l.startsWith("'/")).map((l) => l.slice(2, -1));
}

/**
 * Checks a user's base ISO and names its layout; each way it can be unusable is one clear error.
 */
export async function describeBaseIso(iso: string): Promise<string> {
  const st = await stat(iso).catch((e) => {
    throw new UserError(`--base ${iso}: ${e.code === 'ENOENT' ? 'no such file' : `cannot read (${e.code})`}`);
  });
  if (!st.isFile()) throw new UserError(`--base ${iso}: not a file`);
  await access(iso, constants.R_OK).catch(() => {
    throw new UserError(`--base ${iso}: cannot read (permission denied)`);
  });
  if (st.size < 18 * sector || !(await isIso9660(iso))) {
    throw new UserError(`--base ${iso}: not an ISO 9660 image (no CD001 volume descriptor at 32 KiB)`);
  }
  const volumeBytes = (await volumeBlocks(iso)) * sector;
  if (volumeBytes > st.size) {
    throw new UserError(`--base ${iso}: truncated: the ISO 9660 volume is ${volumeBytes} bytes, the file has ${st.size}`);
  }
  if (!(await hasElToritoRecord(iso))) {
    throw new UserError(`--base ${iso}: the ISO has no El Torito boot record, so it cannot boot`);
  }
  const files = await isoFiles(iso).catch((error) => {
    const why = String(error?.stderr ?? '').split('\n').filter((l) => /FAILURE|SORRY/.test(l)).shift() ?? 'unreadable';
    throw new UserError(`--base ${iso}: xorriso cannot read the ISO's file tree (${why.replace(/^\S+ : \S+ : /, '')})`);
  });
  if (files.includes('KNOPPIX/KNOPPIX')) return 'KNOPPIX layout (KNOPPIX/KNOPPIX)';
  const live = files.filter((f) => /^live\/[^/]+\.squashfs$/.test(f));
  if (live.length > 0) return `Debian live layout (${live.join(', ')})`;
  const top = [...new Set(files.map((f) => f.split('/')[0]))].sort().slice(0, 12);
  throw new UserError(`--base ${iso}: unknown layout: neither KNOPPIX/KNOPPIX nor live/*.squashfs (top level: ${top.join(', ') || 'empty'})`);
}

/** A file's place in an ISO: its first byte's offset and its size. */
export interface IsoExtent { path: string; offset: number; size: number }

/** Where each file below a folder of the ISO lies (xorriso report_lba). One extent a file. */
export async function isoExtents(iso: string, below: string): Promise<IsoExtent[]> {
  const text = await output('xorriso', ['-indev', iso, '-find', `/${below}`.replace(/\/$/, '') || '/', '-type', 'f', '-exec', 'report_lba', '--'], { all: true, maxBuffer: 64 << 20 });
  const extents: IsoExtent[] = [];
  for (const line of text.split('\n')) {
    // File data lba:  0 ,     5327 ,   106927 , 218984536 , '/KNOPPIX/KNOPPIX'
    const m = /^File data lba:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*'\/(.*)'$/.exec(line);
    if (m) extents.push({ path: m[5], offset: Number(m[2]) * sector, size: Number(m[4]) });
  }
  return extents;
}

/** A file's bytes, read straight from its place in the ISO. */
export async function readExtent(iso: string, e: IsoExtent): Promise<Buffer> {
  const fh = await open(iso, 'r');
  try {
    const buf = Buffer.alloc(e.size);
    await fh.read(buf, 0, e.size, e.offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** One file of the ISO, read in place; undefined when the ISO has no such file. */
export async function readIsoFile(iso: string, path: string, extents?: IsoExtent[]): Promise<Buffer | undefined> {
  // Looked up in its folder: xorriso fails on a path that is not there.
  const e = (extents ?? (await isoExtents(iso, path.split('/').slice(0, -1).join('/')))).find((x) => x.path === path);
  return e && readExtent(iso, e);
}

/** Copies a file out of the ISO by streaming its extent (images can be gigabytes). */
export async function copyExtent(iso: string, e: IsoExtent, dest: string): Promise<void> {
  if (e.size === 0) return writeFile(dest, '');
  await pipeline(createReadStream(iso, { start: e.offset, end: e.offset + e.size - 1 }), createWriteStream(dest));
}

/** The volume id of an ISO's primary volume descriptor. */
export async function isoVolumeId(iso: string): Promise<string> {
  const fh = await open(iso, 'r');
  try {
    const buf = Buffer.alloc(32);
    await fh.read(buf, 0, 32, 16 * sector + 40);
    return buf.toString('latin1').trimEnd();
  } finally {
    await fh.close();
  }
}

/** What a compressed root image is, from its first bytes. */
export async function imageFormat(file: string, offset = 0): Promise<'squashfs' | 'cloop' | 'iso9660' | 'unknown'> {
  const fh = await open(file, 'r');
  try {
    const head = Buffer.alloc(128);
    await fh.read(head, 0, 128, offset);
    if (head.toString('latin1', 0, 4) === 'hsqs') return 'squashfs';
    // cloop images start with a shell script that loads the module, and a format signature.
    if (head.toString('latin1', 0, 2) === '#!' && /V[234]\.0/.test(head.toString('latin1', 0, 24)) && /cloop/.test(head.toString('latin1'))) return 'cloop';
    const pvd = Buffer.alloc(6);
    await fh.read(pvd, 0, 6, offset + 16 * sector);
    if (pvd.toString('latin1', 1, 6) === 'CD001') return 'iso9660';
    return 'unknown';
  } finally {
    await fh.close();
  }
}

/** The boot setup of a base ISO: where its layers, kernel and menus are. */
export interface BaseIso {
  layout: 'knoppix' | 'debian-live';
  volumeId: string;
  /** The stacked root images, lowest first, with their places in the ISO. */
  images: (IsoExtent & { format: string })[];
  /** Boot menus: isolinux/syslinux and GRUB configuration files. */
  menus: string[];
  /** The kernel and initrd the first menu entry boots, as ISO paths. */
  kernel: string;
  initrd: string[];
}

/** Reads a boot menu's first kernel and initrds (isolinux KERNEL/APPEND initrd=, or GRUB linux/initrd). */
export function firstBootEntry(text: string, menuPath: string): { kernel: string; initrd: string[] } | undefined {
  const dir = menuPath.split('/').slice(0, -1).join('/');
  const resolve = (p: string) => (p.startsWith('/') ? p.slice(1) : `${dir}/${p}`).replace(/\/\.\//g, '/');
  const kernel = /^\s*(?:KERNEL|LINUX)\s+(\S+)/im.exec(text) ?? /^\s*linux(?:efi)?\s+(\S+)/m.exec(text);
  if (!kernel) return undefined;
  const grub = /^\s*linux/m.test(kernel[0]);
  const initrd = grub
    ? (/^\s*initrd(?:efi)?\s+(.+)$/m.exec(text)?.[1].trim().split(/\s+/) ?? [])
    : (/initrd=(\S+)/i.exec(text)?.[1].split(',') ?? []);
  return { kernel: resolve(kernel[1]), initrd: initrd.map(resolve) };
}

/**
 * The initrds each boot entry of a menu loads, as ISO paths: isolinux `APPEND ... initrd=a,b` or
 * `INITRD a`, GRUB `initrd a b` (commented lines skipped).
 */
export function menuInitrds(text: string, menuPath: string): string[][] {
  const dir = menuPath.split('/').slice(0, -1).join('/');
  const resolve = (p: string) => (p.startsWith('/') ? p.slice(1) : `${dir}/${p}`).replace(/\/\.\//g, '/');
  const entries: string[][] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#')) continue;
    const m = /^initrd(?:efi)?\s+(.+)$/i.exec(line) ?? /(?:^|\s)initrd=(\S+)/i.exec(line);
    if (m) entries.push(m[1].trim().split(/[\s,]+/).map(resolve));
  }
  return entries;
}

/** Reads a checked base ISO's layout, images and boot setup. */
export async function readBaseIso(iso: string): Promise<BaseIso> {
  await describeBaseIso(iso);
  const extents = await isoExtents(iso, '');
  const files = extents.map((e) => e.path);
  const { size } = await stat(iso);
  const cut = extents.find((e) => e.offset + e.size > size);
  if (cut) throw new UserError(`--base ${iso}: truncated: ${cut.path} ends at byte ${cut.offset + cut.size}, but the file has ${size} bytes`);
  const knoppix = files.includes('KNOPPIX/KNOPPIX');
  const names = knoppix
    ? extents.filter((e) => /^KNOPPIX\/KNOPPIX\d*$/.test(e.path)).sort((a, b) => Number(a.path.slice(15) || 0) - Number(b.path.slice(15) || 0))
    : extents.filter((e) => /^live\/[^/]+\.squashfs$/.test(e.path)).sort((a, b) => (a.path < b.path ? -1 : 1));
  const images = [];
  for (const e of names) images.push({ ...e, format: await imageFormat(iso, e.offset) });
  const menus = files.filter((f) => /(^|\/)(isolinux|syslinux|live|menu|txt|stdmenu)\.cfg$/i.test(f) && /(isolinux|syslinux)\//i.test(f) || /(^|\/)grub\/.*\.cfg$/.test(f)).sort();
  let entry;
  for (const m of menus) {
    entry = firstBootEntry((await readIsoFile(iso, m, extents))!.toString('utf8'), m);
    if (entry && files.includes(entry.kernel)) break;
    entry = undefined;
  }
  if (!entry) throw new UserError(`--base ${iso}: no boot menu names a kernel that is on the CD (menus: ${menus.join(', ') || 'none'})`);
  return { layout: knoppix ? 'knoppix' : 'debian-live', volumeId: await isoVolumeId(iso), images, menus, kernel: entry.kernel, initrd: entry.initrd };
}

/** The checksum lists live CDs carry, best first: KNOPPIX's, live-build's md5 and sha256 lists. */
export const checksumLists = ['KNOPPIX/md5sums', 'md5sum.txt', 'sha256sum.txt'];

/** A checksum list's algorithm, by its name. */
export const checksumAlgorithm = (list: string): 'md5' | 'sha256' => (list.startsWith('sha256') ? 'sha256' : 'md5');

/**
 * One line of a checksum list (`md5sum`/`sha256sum` output: "HEX  PATH", or "HEX *PATH" in
 * binary mode; the path relative to the CD's root, with or without ./): its parts, the path's
 * own spelling (prefix) apart, or undefined for a line that is not a checksum of that algorithm.
 */
export function checksumLine(line: string, algorithm: 'md5' | 'sha256'): { sum: string; mode: string; prefix: string; path: string } | undefined {
  const m = /^([0-9a-f]+) ([ *])(\.\/|\/)?(.+?)\r?$/i.exec(line);
  if (!m || m[1].length !== (algorithm === 'md5' ? 32 : 64)) return undefined;
  return { sum: m[1].toLowerCase(), mode: m[2], prefix: m[3] ?? '', path: m[4] };
}

/**
 * What a live ISO's own checksum lists say of each file, as hex digests by ISO path: md5 where
 * a list has it, else sha256. A list that is not there gives nothing.
 */
export async function listedChecksums(iso: string, extents: IsoExtent[]): Promise<Map<string, string>> {
  const sums = new Map<string, string>();
  for (const list of checksumLists) {
    const text = (await readIsoFile(iso, list, extents))?.toString('latin1') ?? '';
    for (const line of text.split('\n')) {
      const entry = checksumLine(line, checksumAlgorithm(list));
      if (entry && !sums.has(entry.path)) sums.set(entry.path, entry.sum);
    }
  }
  return sums;
}
