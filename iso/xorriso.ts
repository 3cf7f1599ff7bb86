import { open } from 'node:fs/promises';
import { run, output } from '../lib/exec.ts';

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
  const text = await output('xorriso', ['-indev', iso, '-report_el_torito', 'plain'], { all: true });
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
