import { mkdir, copyFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../lib/exec.ts';
import { hostFile } from '../lib/host.ts';
import { walk } from '../lib/hash.ts';

const grubModules = [
  'part_gpt', 'part_msdos', 'iso9660', 'fat', 'normal', 'search', 'search_label', 'search_fs_file',
  'configfile', 'linux', 'echo', 'test', 'ls', 'cat', 'serial', 'terminal', 'efi_gop', 'efi_uga',
  'all_video', 'gzio', 'sleep', 'reboot', 'halt',
];

/**
 * A standalone GRUB for x86_64 UEFI whose built-in config finds the boot medium by its volume
 * label and hands over to /boot/grub/grub.cfg there.
 */
export async function makeGrubEfi(file: string, volumeLabel: string, work: string): Promise<void> {
  const early = join(work, 'grub-early.cfg');
  await writeFile(early, [
    `search --no-floppy --set=root --label ${volumeLabel}`,
    'set prefix=($root)/boot/grub',
    'configfile /boot/grub/grub.cfg',
    '',
  ].join('\n'));
  await run('grub-mkimage', ['-O', 'x86_64-efi', '-d', hostFile('grubEfiModules'), '-o', file, '-p', '/boot/grub', '-c', early, ...grubModules]);
}

/**
 * A FAT image holding EFI/BOOT/BOOTX64.EFI, for the El Torito EFI entry and the appended EFI
 * partition. mkfs.fat --invariant and mcopy -m keep it byte-identical for the same inputs.
 */
export async function makeEfiImage(bootx64: string, image: string, epoch: number, work: string): Promise<void> {
  const tree = join(work, 'efi-tree');
  await rm(tree, { recursive: true, force: true });
  await mkdir(join(tree, 'EFI', 'BOOT'), { recursive: true });
  await copyFile(bootx64, join(tree, 'EFI', 'BOOT', 'BOOTX64.EFI'));
  const entries = await walk(tree);
  for (const e of [...entries.reverse(), { path: '' }]) await utimes(join(tree, e.path), epoch, epoch);
  const sizeKiB = Math.max(2048, Math.ceil((entries.reduce((n, e) => n + e.size, 0) * 1.2) / 1024 / 512) * 512 + 512);
  await rm(image, { force: true });
  await run('mkfs.fat', ['--invariant', '-n', 'EFIBOOT', '-C', image, String(sizeKiB)]);
  await run('mcopy', ['-s', '-m', '-i', image, join(tree, 'EFI'), '::/'], { env: { MTOOLS_SKIP_CHECK: '1' } });
}
