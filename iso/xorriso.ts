import { open } from 'node:fs/promises';
import { UserError } from '../lib/errors.ts';
import { run, output } from '../lib/exec.ts';
import { captureHashed } from '../lib/fifo.ts';

export interface HybridIso {
  /** Folder laid out as the ISO's tree. */
  tree: string;
  out: string;
  volumeLabel: string;
  epoch: number;
  /** BIOS: isolinux.bin path inside the tree, its boot catalog, and the isohybrid MBR file. */
  bios: { image: string; catalog: string; mbr: string };
  /** UEFI: a FAT image (EFI/BOOT/BOOTX64.EFI) appended as partition 2 and used as El Torito entry. */
  efiImage: string;
}

/**
 * A hybrid ISO: El Torito BIOS (isolinux) and UEFI entries, plus an MBR and GPT so the same file
 * boots from a USB stick. SOURCE_DATE_EPOCH makes xorriso fix every date and the GPT/volume ids.
 */
export async function makeHybridIso(o: HybridIso): Promise<void> {
  await run('xorriso', [
    '-as', 'mkisofs',
    '-o', o.out,
    '-V', o.volumeLabel,
    '-iso-level', '3', '-J', '-joliet-long', '-r',
    '-isohybrid-mbr', o.bios.mbr,
    '-b', o.bios.image, '-c', o.bios.catalog,
    '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table',
    '-eltorito-alt-boot',
    '-e', '--interval:appended_partition_2:all::', '-no-emul-boot', '-isohybrid-gpt-basdat',
    '-append_partition', '2', '0xef', o.efiImage, '-appended_part_as_gpt',
    o.tree,
  ], { env: { SOURCE_DATE_EPOCH: String(o.epoch) } });
}

export interface BootEntry { platform: string; bootable: boolean; media: string; loadSize: number }

/** The El Torito boot entries of an ISO, as xorriso reports them. */
export async function elToritoEntries(iso: string): Promise<BootEntry[]> {
  const text = await output('xorriso', ['-abort_on', 'FAILURE', '-return_with', 'FAILURE', '32', '-indev', iso, '-report_el_torito', 'plain'], { all: true });
  const entries: BootEntry[] = [];
  for (const line of text.split('\n')) {
    // El Torito boot img :   1  BIOS  y   none  0x0000  0x00      4        34
    const m = /^El Torito boot img\s*:\s*\d+\s+(\S+)\s+(\S)\s+(\S+)\s+\S+\s+\S+\s+(\d+)/.exec(line);
    if (m) entries.push({ platform: m[1], bootable: m[2] === 'y', media: m[3], loadSize: Number(m[4]) });
  }
  return entries;
}

/** Whether the file starts like an ISO 9660 image ("CD001" in the first volume descriptor). */
export async function isIso9660(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(6);
    const { bytesRead } = await fh.read(buf, 0, 6, 0x8000);
    return bytesRead === 6 && buf.toString('latin1', 1, 6) === 'CD001';
  } finally {
    await fh.close();
  }
}

const tolerant = ['-abort_on', 'FAILURE', '-return_with', 'FAILURE', '32'];

/** Splits one line of xorriso's command report into arguments ('...' quoted, '"'"' inside). */
function xorrisoWords(line: string): string[] {
  const words: string[] = [];
  for (const m of line.matchAll(/((?:'[^']*'|[^\s'])+)/g)) words.push(m[1].replace(/'([^']*)'/g, '$1'));
  return words;
}

/**
 * The xorriso commands that recreate an ISO's boot setup (El Torito, MBR/GPT, appended
 * partitions). This is `-boot_image any replay` made explicit, plus what 1.5.4's replay drops:
 * an EFI El Torito image that lives in an appended partition rather than in a file.
 */
export async function bootSetupCommands(iso: string): Promise<string[]> {
  // Loading such an ISO is a SORRY to xorriso ("not a data file"); only FAILURE stops it.
  const cmd = await output('xorriso', [...tolerant, '-indev', iso, '-report_el_torito', 'cmd'], { all: true });
  const plain = await output('xorriso', [...tolerant, '-indev', iso, '-report_el_torito', 'plain'], { all: true });
  const args = cmd.split('\n').filter((l) => /^-(volid|volume_date|boot_image|append_partition)\s/.test(l)).flatMap(xorrisoWords);
  const withPath = new Set([...plain.matchAll(/^El Torito img path :\s*(\d+)/gm)].map((m) => m[1]));
  // An appended partition typed by a GPT type GUID came from -appended_part_as_gpt, which the
  // report does not repeat; without it the partition table comes out MBR only.
  if (/^-append_partition \d+ [0-9a-f]{32} /m.test(cmd) && !/appended_part_as=gpt/.test(cmd)) args.push('-boot_image', 'any', 'appended_part_as=gpt');
  const partitions = [...cmd.matchAll(/^-append_partition (\d+) \S+ --interval:imported_iso:(\d+)d-/gm)].map((m) => ({ n: m[1], start: Number(m[2]) }));
  for (const m of plain.matchAll(/^El Torito boot img :\s*(\d+)\s+UEFI\s+\S+\s+\S+\s+\S+\s+\S+\s+\d+\s+(\d+)/gm)) {
    if (withPath.has(m[1])) continue;
    const part = partitions.find((p) => p.start === Number(m[2]) * 4);
    if (!part) continue;
    args.push('-boot_image', 'any', `efi_path=--interval:appended_partition_${part.n}:all::`, '-boot_image', 'any', 'platform_id=0xef', '-boot_image', 'any', 'emul_type=no_emulation', '-boot_image', 'any', 'next');
  }
  return args;
}

/**
 * A new ISO from a base ISO plus files mapped in (added or replacing the base's), reusing the
 * base's file data and recreating its boot setup: El Torito entries, MBR/GPT, appended EFI
 * partition. Nothing of the base is unpacked or recompressed.
 */
export async function rewriteIso(o: { base: string; out: string; epoch: number; files: { source: string; path: string }[]; remove?: string[] }): Promise<string> {
  const boot = await bootSetupCommands(o.base);
  // A folder that -map creates for an added file would carry the time of the build: it gets the
  // epoch too. The base's own folders keep theirs.
  const baseDirs = new Set((await output('xorriso', [...tolerant, '-indev', o.base, '-find', '/', '-type', 'd'], { maxBuffer: 64 << 20 }))
    .split('\n').filter((l) => l.startsWith("'/")).map((l) => l.slice(1, -1)));
  const newDirs = [...new Set(o.files.flatMap((f) => {
    const parts = `/${f.path}`.split('/').slice(1, -1);
    return parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`);
  }))].filter((d) => !baseDirs.has(d));
  // xorriso streams the ISO to us through a FIFO, in order (written to a file it would put the
  // first 64 KiB last); we write it and take its sha256 on the way, in parallel with xorriso.
  let sha256: string;
  try {
    sha256 = await captureHashed(o.out, (fifo) => run('xorriso', [
      ...tolerant, '-indev', o.base, '-outdev', `stdio:${fifo}`, ...boot,
      ...(o.remove?.length ? ['-rm', ...o.remove.map((p) => `/${p}`), '--'] : []),
      ...o.files.flatMap((f) => ['-map', f.source, `/${f.path}`]),
      // Added files carry the epoch as their date, whatever their source's; SOURCE_DATE_EPOCH
      // makes xorriso set every file's other dates to its mtime.
      ...(o.files.length ? ['-alter_date', 'm-c', `=${o.epoch}`, ...o.files.map((f) => `/${f.path}`), ...newDirs, '--'] : []),
      '-commit',
    ], { env: { SOURCE_DATE_EPOCH: String(o.epoch) } }));
  } catch (error: any) {
    if (error instanceof UserError) throw error;
    throw new Error(`rewriting ${o.base}: ${error?.message}`);
  }
  // The tolerance above must not hide a lost boot entry: compare what the result can boot.
  const want = (await elToritoEntries(o.base)).map((e) => e.platform).join(' ');
  const have = (await elToritoEntries(o.out)).map((e) => e.platform).join(' ');
  if (want !== have) throw new Error(`xorriso: the rewritten ISO's El Torito entries (${have}) differ from the base's (${want})`);
  const tables = async (iso: string) => {
    const area = await output('xorriso', [...tolerant, '-indev', iso, '-report_system_area', 'plain'], { all: true });
    return ['MBR', 'GPT', 'APM'].filter((t) => new RegExp(`^${t} `, 'm').test(area)).join(' ');
  };
  const [wantTables, haveTables] = [await tables(o.base), await tables(o.out)];
  if (wantTables !== haveTables) throw new Error(`xorriso: the rewritten ISO's partition tables (${haveTables}) differ from the base's (${wantTables})`);
  return sha256;
}
