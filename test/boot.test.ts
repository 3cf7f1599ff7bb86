import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { singleNodeBoot, type BootReport } from '../driver/scenarios.ts';
import { trackedPids } from '../driver/processes.ts';
import { defaultOutPath, projectRoot } from '../lib/paths.ts';

// Boots the ISO that build.test.ts made, as users will: SeaBIOS on i440fx and OVMF on q35 (AHCI),
// from a CD and from a USB stick. TCG unless the KVM probe shows KVM works on this host.
const logDir = join(projectRoot, 'out', 'boot');

function assertReport(r: BootReport) {
  for (const c of r.checks) assert.ok(c.ok, `${r.firmware}/${r.medium}: ${c.name}\n${c.detail}`);
  assert.ok(existsSync(r.serialLog) && statSync(r.serialLog).size > 0, 'serial log kept');
  assert.ok(readFileSync(r.screenshot).subarray(1, 4).toString() === 'PNG', 'VGA screenshot is a PNG');
  assert.equal(trackedPids(), [], 'every VM and switch stopped');
  console.log(`    ${r.firmware}/${r.medium} (${r.accel}): shell after ${r.secondsToShell.toFixed(1)} s`);
}

test.before(async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the ISO first');
  await mkdir(logDir, { recursive: true });
});

test('SeaBIOS, CD: root shell, 10.0.0.1/8 on the first NIC only, hostname', async () => {
  assertReport(await singleNodeBoot(defaultOutPath, { firmware: 'bios', accel: 'auto', logDir }));
});

test('OVMF on q35 (AHCI), CD: the same', async () => {
  assertReport(await singleNodeBoot(defaultOutPath, { firmware: 'uefi', accel: 'auto', logDir }));
});

test('OVMF, USB stick (xHCI): the same', async () => {
  assertReport(await singleNodeBoot(defaultOutPath, { firmware: 'uefi', accel: 'auto', logDir, medium: 'usb' }));
});

test('SeaBIOS, USB stick: the same', async () => {
  assertReport(await singleNodeBoot(defaultOutPath, { firmware: 'bios', accel: 'auto', logDir, medium: 'usb' }));
});

test.run();
