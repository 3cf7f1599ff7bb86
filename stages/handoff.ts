import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BaseIso } from '../iso/layout.ts';

// What the stages hand each other, typed and read in this one place: each stage writes its
// record with write*, and every reader takes it with read*, which checks its fields.

/** base.json: the base system the build starts from (base stage). */
export interface BaseInfo {
  layout: 'knoppix' | 'debian-live';
  kernelVersion: string;
  /** The kernel image, relative to the stage folder. */
  kernel: string;
  /** The root filesystem to read files from: a file (relative to the stage folder, or absolute
   * for the user's ISO), the byte offset where the filesystem starts in it, and its format. */
  rootImage: { file: string; offset: number; format: 'squashfs' | 'iso9660' };
  /** The default base's compressed root (relative to the stage folder) and its md5. */
  root?: string;
  rootMd5?: string;
  packages: string[];
  source: string;
  /**
   * A user's ISO to remaster: where its images, menus, kernel and initrd are, and each image's
   * checksum by path (hex: md5, or sha256 where the CD's own list has only that).
   */
  remaster?: BaseIso & { iso: string; imageChecksums: Record<string, string> };
}

/** unpack.json: the kernel the CD boots and its modules (unpack stage). */
export interface UnpackInfo {
  /** The kernel the CD boots: the base's, or the site's replacement package's. */
  kernelVersion: string;
  /** That kernel's image, relative to the stage folder. */
  kernel: string;
  /** Its lib/modules/<kver>, relative to the stage folder. */
  modulesDir: string;
  /** Where the image keeps modules trees (usr/lib/modules or lib/modules), relative to its root. */
  imageModulesDir: string;
  /** The base's own kernel version; differs from kernelVersion when the site replaces the kernel. */
  baseKernelVersion: string;
  /** A user's base's installed packages ("name version"), read from its dpkg status. */
  packages?: string[];
  /** A static busybox for minirt and the initrds, relative to the stage folder: the default
   * base's own, or for a remaster the host's busybox-static. */
  busybox: string;
}

/** packages.json: the Debian packages a remaster adds to the base (packages stage; its tree/). */
export interface PackagesInfo {
  /** "name version" of each package installed over the base. */
  added: string[];
  /** Paths the packages' scripts removed from the base, for the layer to hide. */
  whiteouts: string[];
}

/** iso.json: the ISO a pack or remaster stage wrote. */
export interface IsoInfo { file: string; sha256: string }

async function readRecord<T>(dir: string, file: string, required: Record<string, string>): Promise<T> {
  const path = join(dir, file);
  const value = JSON.parse(await readFile(path, 'utf8'));
  for (const [field, type] of Object.entries(required)) {
    if (typeof value?.[field] !== type) throw new Error(`${path}: field ${field} is not a ${type} (a cache entry from another version? delete it)`);
  }
  return value as T;
}

async function writeRecord(dir: string, file: string, value: unknown): Promise<void> {
  await writeFile(join(dir, file), `${JSON.stringify(value, null, 2)}\n`);
}

export const readBaseInfo = (dir: string) => readRecord<BaseInfo>(dir, 'base.json', { layout: 'string', kernelVersion: 'string', kernel: 'string', rootImage: 'object', source: 'string' });
export const writeBaseInfo = (dir: string, info: BaseInfo) => writeRecord(dir, 'base.json', info);
export const readUnpackInfo = (dir: string) => readRecord<UnpackInfo>(dir, 'unpack.json', { kernelVersion: 'string', kernel: 'string', modulesDir: 'string', imageModulesDir: 'string', baseKernelVersion: 'string', busybox: 'string' });
export const writeUnpackInfo = (dir: string, info: UnpackInfo) => writeRecord(dir, 'unpack.json', info);
export const readPackagesInfo = (dir: string) => readRecord<PackagesInfo>(dir, 'packages.json', { added: 'object', whiteouts: 'object' });
export const writePackagesInfo = (dir: string, info: PackagesInfo) => writeRecord(dir, 'packages.json', info);
/** The base root's paths (relative, no leading /), one a line: unpack's base-files.txt. */
export const baseFilesName = 'base-files.txt';
export const writeBaseFiles = (dir: string, paths: string[]) => writeFile(join(dir, baseFilesName), `${paths.join('\n')}\n`);
export const readBaseFiles = async (dir: string): Promise<string[]> => (await readFile(join(dir, baseFilesName), 'utf8')).split('\n').filter(Boolean);
export const readIsoInfo = (dir: string) => readRecord<IsoInfo>(dir, 'iso.json', { file: 'string', sha256: 'string' });
export const writeIsoInfo = (dir: string, info: IsoInfo) => writeRecord(dir, 'iso.json', info);
