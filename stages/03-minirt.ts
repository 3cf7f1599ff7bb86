import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../lib/exec.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';
import { entriesFromTree, writeCpioGz } from '../iso/cpio.ts';
import { moduleClosure, readModuleIndex } from '../iso/modules.ts';
import { UserError } from '../lib/errors.ts';
import { readBaseInfo, readUnpackInfo } from './handoff.ts';

/**
 * Drivers minirt loads to find the medium, in this order: disk and CD controllers (IDE, AHCI,
 * virtio, NVMe, SD), USB host controllers and storage, then the filesystems it mounts.
 */
export const minirtModules = [
  'ata_piix', 'ata_generic', 'pata_acpi', 'ahci', 'virtio_pci', 'virtio_blk', 'virtio_scsi', 'nvme',
  'sdhci_pci', 'mmc_block', 'xhci_pci', 'ehci_pci', 'ohci_pci', 'uhci_hcd', 'usb_storage', 'uas',
  'sr_mod', 'sd_mod', 'isofs', 'loop', 'squashfs', 'overlay',
];

/**
 * NIC drivers for netbooted nodes (loaded only when the kernel command line names an init
 * node): common wired chipsets of PCs and servers, and the virtual ones.
 */
export const minirtNetModules = [
  'e1000', 'e1000e', 'igb', 'igc', 'ixgb', 'ixgbe', 'r8169', '8139too', '8139cp', 'tg3', 'bnx2', 'bnxt_en',
  'sky2', 'skge', 'forcedeth', 'atl1', 'atl1c', 'atl1e', 'alx', 'b44', 'via_rhine', 'via_velocity', 'pcnet32',
  'ne2k_pci', 'tulip', 'e100', 'r6040', 'sis900', 'natsemi', 'virtio_pci', 'virtio_net', 'vmxnet3', 'tlan', 'be2net',
  'i40e', 'ice', 'mlx4_en', 'mlx5_core', 'qlcnic', 'cxgb4', 'enic', 'hv_netvsc', 'xen_netfront', 'af_packet',
];

/**
 * What a netbooted node of a remastered CD mounts its root images with: squashfs, cloop (a
 * KNOPPIX base's; with ISO 9660 inside), loop devices, and the overlay that stacks them.
 */
export const netbootImageModules = ['loop', 'squashfs', 'overlay', 'isofs', 'cloop'];

export const minirt = {
  name: 'minirt',
  module: import.meta.url,
  summary: "minirt.gz: the project's initramfs (busybox, the kernel's storage and NIC drivers, init); for a remaster, the one its netbooted nodes boot",
  after: ['base', 'unpack'],
  tools: ['depmod'],
  inputs: (o: BuildOptions) => ({
    files: [join(overlaysDir, 'minirt')],
    params: { modules: o.base ? netbootImageModules : minirtModules, netModules: minirtNetModules },
  }),
  async run(ctx) {
    const unpackDir = ctx.from('unpack');
    const info = await readUnpackInfo(unpackDir);
    const base = await readBaseInfo(ctx.from('base'));
    const kver = info.kernelVersion;
    const modulesDir = join(unpackDir, info.modulesDir);
    const tree = join(ctx.out, 'tree');
    const index = await readModuleIndex(modulesDir);
    // A user's CD boots with its own initrd; this minirt is for the nodes it netboots, so it
    // needs no disk drivers, but what mounts the base's images and ours.
    const modules = base.remaster ? netbootImageModules : minirtModules;
    const { files, missing } = moduleClosure(index, [...modules, ...minirtNetModules]);
    if (base.remaster) {
      const formats = new Set(base.remaster.images.map((i) => i.format));
      const needed = ['loop', 'squashfs', 'overlay', ...(formats.has('cloop') ? ['cloop', 'isofs'] : [])];
      const lacking = needed.filter((m) => missing.includes(m));
      const nics = minirtNetModules.filter((m) => !['af_packet', 'virtio_pci'].includes(m) && !missing.includes(m));
      if (nics.length === 0) lacking.push(`any NIC driver (${minirtNetModules.slice(0, 4).join(', ')}...)`);
      if (lacking.length) throw new UserError(`--base ${base.remaster.iso}: its kernel ${kver} lacks what netbooted nodes need: ${lacking.join(', ')}`);
    }
    if (missing.length) ctx.log(`not in kernel ${kver}, skipped: ${missing.join(' ')}`);
    const treeModules = join(tree, 'lib', 'modules', kver);
    for (const f of files) {
      await mkdir(dirname(join(treeModules, f)), { recursive: true });
      await copyFile(join(modulesDir, f), join(treeModules, f));
    }
    for (const f of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order']) {
      await copyFile(join(modulesDir, f), join(treeModules, f)).catch(() => {});
    }
    await run('depmod', ['-b', tree, kver]);
    await mkdir(join(tree, 'bin'), { recursive: true });
    await copyFile(join(unpackDir, info.busybox), join(tree, 'bin', 'busybox'));
    await symlink('busybox', join(tree, 'bin', 'sh')); // for init's #!; init installs the other applets
    await mkdir(join(tree, 'etc', 'minirt'), { recursive: true });
    await writeFile(join(tree, 'etc', 'minirt', 'modules'), `${modules.join('\n')}\n`);
    await writeFile(join(tree, 'etc', 'minirt', 'net-modules'), `${minirtNetModules.join('\n')}\n`);
    await copyFile(join(overlaysDir, 'minirt', 'init'), join(tree, 'init'));
    await chmod(join(tree, 'init'), 0o755); // whatever the checkout's umask made it
    const entries = [
      ...(await entriesFromTree(tree)),
      { path: 'dev', type: 'dir' as const, mode: 0o755 },
      { path: 'dev/console', type: 'chardev' as const, mode: 0o600, major: 5, minor: 1 },
    ].sort((a, b) => (a.path < b.path ? -1 : 1)); // parents before children, byte order
    await writeCpioGz(entries, join(ctx.out, 'minirt.gz'), ctx.epoch);
    ctx.log(`${files.length} modules for ${kver}`);
  },
} satisfies Stage<BuildOptions>;
