import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { singleNodeBoot, type BootReport } from '../driver/scenarios.ts';
import { timelineOf } from '../driver/timeline.ts';
import { trackedPids } from '../driver/processes.ts';
import { defaultOutPath, defaultSiteDir, projectRoot } from '../lib/paths.ts';
import { buildCli, setUp } from './helpers.ts';

// Boots the ISO that build.test.ts made, as users will: SeaBIOS on i440fx and OVMF on q35 (AHCI),
// from a CD and from a USB stick. TCG unless the KVM probe shows KVM works on this host.
const logDir = join(projectRoot, 'out', 'boot');

/** A text file out of an ISO. */
function isoText(iso: string, path: string, dir: string): string {
  const dest = join(dir, path.replace(/\//g, '_'));
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', `/${path}`, dest], { stdio: 'ignore' });
  return readFileSync(dest, 'utf8');
}

function assertReport(r: BootReport) {
  for (const c of r.checks) assert.ok(c.ok, `${r.firmware}/${r.medium}: ${c.name}\n${c.detail}`);
  assert.ok(existsSync(r.serialLog) && statSync(r.serialLog).size > 0, 'serial log kept');
  assert.ok(readFileSync(r.screenshot).subarray(1, 4).toString() === 'PNG', 'VGA screenshot is a PNG');
  assert.equal(trackedPids(), [], 'every VM and switch stopped');
  console.log(`    ${r.firmware}/${r.medium} (${r.accel}): shell after ${r.secondsToShell.toFixed(1)} s: ${timelineOf(r.serialLog)}`);
  console.log(`      boot.d: ${r.bootServices.map((b) => `${b.name} ${b.seconds.toFixed(1)} s`).join(', ')}`);
  assert.ok(r.bootServices.some((b) => b.name === '20-interconnect'), 'knoppix-autoconfig timed its services');
}

setUp(async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the ISO first');
  await mkdir(logDir, { recursive: true });
});

/**
 * minirt loads the drivers the machine's controllers ask for, not every one it carries: `want`
 * must be among them (the medium's controller), `not` must not (USB's, on a CD boot).
 */
function assertDrivers(r: BootReport, want: RegExp, not?: RegExp) {
  const line = /minirt: drivers loaded: (.*)/.exec(readFileSync(r.serialLog, 'utf8'))?.[1] ?? '';
  assert.match(line, want, `${r.firmware}/${r.medium}: minirt's drivers: ${line}`);
  if (not) assert.not.match(line, not, `${r.firmware}/${r.medium}: minirt's drivers: ${line}`);
}

test('SeaBIOS, CD: root shell, 10.0.0.1/8 on the first NIC only, hostname', async () => {
  const r = await singleNodeBoot(defaultOutPath, { firmware: 'bios', accel: 'auto', logDir });
  assertReport(r);
  assertDrivers(r, /\bata_piix\b/, /usb|ahci|nvme/);
});

test('OVMF on q35 (AHCI), CD: the same', async () => {
  const r = await singleNodeBoot(defaultOutPath, { firmware: 'uefi', accel: 'auto', logDir });
  assertReport(r);
  assertDrivers(r, /\bahci\b/, /ata_piix|nvme/);
});

test('OVMF, USB stick (xHCI): the same', async () => {
  const r = await singleNodeBoot(defaultOutPath, { firmware: 'uefi', accel: 'auto', logDir, medium: 'usb' });
  assertReport(r);
  assertDrivers(r, /\bxhci_pci\b.*\busb_storage\b|\busb_storage\b.*\bxhci_pci\b/);
});

test('SeaBIOS, USB stick: the same', async () => {
  const r = await singleNodeBoot(defaultOutPath, { firmware: 'bios', accel: 'auto', logDir, medium: 'usb' });
  assertReport(r);
  assertDrivers(r, /\busb_storage\b/);
});

test('initrdModules: minirt loads ssi_compat and virtio_net before it looks for the CD; a label and an argument with quotes come out exact', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'early-'));
  const site = join(dir, 'site');
  await cp(defaultSiteDir, site, { recursive: true });
  const siteJson = JSON.parse(readFileSync(join(defaultSiteDir, 'site.json'), 'utf8'));
  const label = `A & B's "cluster" $x`;
  const arg = "openssi.note='it''s'";
  await writeFile(join(site, 'site.json'), JSON.stringify({ ...siteJson, initrdModules: ['ssi_compat', 'virtio_net'], boot: { ...siteJson.boot, label, kernelArgs: [arg] } }));
  const iso = join(dir, 'early.iso');
  const r = await buildCli(['--site', site, '--out', iso]);
  assert.is(r.code, 0, r.stderr);
  const isolinux = isoText(iso, 'boot/isolinux/isolinux.cfg', dir);
  assert.ok(isolinux.includes(`  MENU LABEL ${label}\n`), isolinux);
  assert.ok(isolinux.includes(`  APPEND initrd=minirt.gz console=tty0 console=ttyS0,115200n8 ${arg}\n`), isolinux);
  // GRUB reads its file like a shell: sh must read the same words from the menuentry and linux lines.
  const grub = isoText(iso, 'boot/grub/grub.cfg', dir);
  const words = (line: string) => execFileSync('sh', ['-c', `for w in ${line}; do printf '%s\\n' "$w"; done`], { encoding: 'utf8' }).split('\n').slice(0, -1);
  assert.equal(words(/^menuentry (.*) \{$/m.exec(grub)![1]), [label]);
  assert.equal(words(/^  linux (.*)$/m.exec(grub)![1]), ['/boot/isolinux/linux', 'console=tty0', 'console=ttyS0,115200n8', arg]);
  try {
    assertReport(await singleNodeBoot(iso, {
      firmware: 'bios', accel: 'auto', logDir: join(logDir, 'early'),
      also: async (vm, check) => {
        const log = (await vm.execute('dmesg')).output.split('\n');
        const at = (re: RegExp) => log.findIndex((l) => re.test(l));
        const loaded = ['ssi_compat', 'net_failover', 'virtio_net'].map((m) => at(new RegExp(`openssi-initrd: loaded ${m}$`)));
        // minirt's own first step is loading the CD drivers (sr_mod, isofs...).
        const cdrom = at(/sr_mod|cdrom|ISO 9660 Extensions/);
        const cmdline = (await vm.succeed('cat /proc/cmdline')).trim();
        check('the kernel argument with quotes reached the kernel as written', cmdline.endsWith(` ${arg}`), cmdline);
        const conf = (await vm.succeed('. /etc/openssi/cluster.conf; printf "%s\\n" "$KERNEL_ARGS"')).trim();
        check('cluster.conf gives it back byte for byte', conf === `console=tty0 console=ttyS0,115200n8 ${arg}`, conf);
        check('modules loaded from the initrd, dependencies first, before the CD is found', loaded.every((i) => i >= 0) && loaded[1] < loaded[2] && cdrom > Math.max(...loaded),
          log.filter((l) => /openssi-initrd|sr_mod|cdrom|ISO 9660/.test(l)).join('\n'));
      },
    }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
