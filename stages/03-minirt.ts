import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../lib/exec.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';
import { entriesFromTree, writeCpioGz } from '../iso/cpio.ts';
import { moduleClosure, readModuleIndex } from '../iso/modules.ts';
import { UserError } from '../lib/errors.ts';
import { contentsDigest } from '../lib/hash.ts';
import { readBaseInfo, readUnpackInfo } from './handoff.ts';

/**
 * Drivers minirt carries to find the medium: disk and CD controllers (IDE, AHCI, virtio, NVMe,
 * SD), USB host controllers and storage, and the disk and CD readers. It loads those the
 * machine's controllers ask for (their modalias), and all of these, in this order, only when
 * that finds no medium within seconds.
 */
export const minirtControllers = [
  'ata_piix', 'ata_generic', 'pata_acpi', 'ahci', 'virtio_pci', 'virtio_blk', 'virtio_scsi', 'nvme',
  'sdhci_pci', 'mmc_block', 'xhci_pci', 'ehci_pci', 'ohci_pci', 'uhci_hcd', 'usb_storage', 'uas',
  'sr_mod', 'sd_mod',
];

/** What reads the medium and stacks its images: loaded at every boot from a medium. */
export const minirtFilesystems = ['isofs', 'loop', 'squashfs', 'overlay'];

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

/** What minirt reads of the kernel's modules folder besides the drivers themselves. */
const indexFiles = ['modules.dep', 'modules.builtin', 'modules.builtin.modinfo', 'modules.order'];

/**
 * The drivers minirt carries (with their dependencies) and those the kernel lacks. A user's CD
 * boots with its own initrd; its minirt is for the nodes it netboots, so it needs no disk
 * drivers, but what mounts the base's images and ours.
 */
async function driversOf(o: BuildOptions, unpackDir: string) {
  const info = await readUnpackInfo(unpackDir);
  const modulesDir = join(unpackDir, info.modulesDir);
  const modules = o.base ? netbootImageModules : minirtFilesystems;
  const controllers = o.base ? [] : minirtControllers;
  return { info, modulesDir, modules, controllers, ...moduleClosure(await readModuleIndex(modulesDir), [...controllers, ...modules, ...minirtNetModules]) };
}

export const minirt = {
  name: 'minirt',
  module: import.meta.url,
  summary: "minirt.gz: the project's initramfs (busybox, the kernel's storage and NIC drivers, init); for a remaster, the one its netbooted nodes boot",
  after: ['base', 'unpack'],
  tools: ['depmod'],
  // What it reads of the kernel, not the base: another base with that kernel reuses it.
  keyedByInputs: true,
  inputs: async (o: BuildOptions, upstream) => {
    const { info, modulesDir, modules, controllers, files } = await driversOf(o, upstream('unpack'));
    const base = await readBaseInfo(upstream('base'));
    return {
      files: [join(overlaysDir, 'minirt')],
      params: {
        kver: info.kernelVersion, modules, controllers, netModules: minirtNetModules, formats: base.remaster?.images.map((i) => i.format) ?? null,
        // What it reads of unpack's output, by contents alone (not dated: unpack made those files).
        read: await contentsDigest([...[...files, ...indexFiles].map((f) => join(modulesDir, f)), join(upstream('unpack'), info.busybox)]),
      },
    };
  },
  async run(ctx) {
    const { info, modulesDir, modules, controllers, files, missing } = await driversOf(ctx.options, ctx.from('unpack'));
    const base = await readBaseInfo(ctx.from('base'));
    const kver = info.kernelVersion;
    const tree = join(ctx.out, 'tree');
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
    for (const f of indexFiles.filter((n) => n !== 'modules.dep')) {
      await copyFile(join(modulesDir, f), join(treeModules, f)).catch(() => {});
    }
    await run('depmod', ['-b', tree, kver]);
    await mkdir(join(tree, 'bin'), { recursive: true });
    await copyFile(join(ctx.from('unpack'), info.busybox), join(tree, 'bin', 'busybox'));
    await symlink('busybox', join(tree, 'bin', 'sh')); // for init's #!; init installs the other applets
    await mkdir(join(tree, 'etc', 'minirt'), { recursive: true });
    await writeFile(join(tree, 'etc', 'minirt', 'modules'), `${modules.join('\n')}\n`);
    if (controllers.length) await writeFile(join(tree, 'etc', 'minirt', 'controllers'), `${controllers.join('\n')}\n`);
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
