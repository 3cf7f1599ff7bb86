#!/usr/bin/env tsx
// npm run boot -- ISO: boots the ISO headless in QEMU and checks it reached a cluster shell.
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { clusterBoot, singleNodeBoot } from '../driver/scenarios.ts';
import type { AccelChoice } from '../driver/accel.ts';
import { defaultOutPath, projectRoot } from '../lib/paths.ts';

const usage = `Usage: npm run boot -- [ISO] [options]

Boots the ISO (default out/knoppix-openssi.iso) in QEMU, headless, and checks the init node.
  --firmware bios|uefi|both   SeaBIOS on i440fx, OVMF on q35, or one after the other (default both)
  --usb                       attach the ISO as a USB stick instead of a CD
  --accel auto|tcg|kvm        auto uses KVM only when a quick probe shows it works (default auto)
  --nodes N                   boot a cluster instead: node 1 from the CD, nodes 2..N from the
                              interconnect (even by PXE, odd by Etherboot), and show cluster -v
  --logs DIR                  serial logs and screenshots (default out/boot)
  --json                      print the reports as JSON`;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    firmware: { type: 'string', default: 'both' }, usb: { type: 'boolean' }, accel: { type: 'string', default: 'auto' },
    logs: { type: 'string' }, nodes: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const iso = resolve(positionals[0] ?? defaultOutPath);
const fail = (msg: string) => {
  console.error(`openssi-live boot: ${msg}`);
  process.exit(1);
};
if (!existsSync(iso)) fail(`${iso}: no such ISO (run npm run build first)`);
if (!['bios', 'uefi', 'both'].includes(values.firmware!)) fail(`--firmware ${values.firmware}: must be bios, uefi or both`);
if (!['auto', 'tcg', 'kvm'].includes(values.accel!)) fail(`--accel ${values.accel}: must be auto, tcg or kvm`);
const logDir = resolve(values.logs ?? `${projectRoot}/out/boot`);
await mkdir(logDir, { recursive: true });
if (values.nodes !== undefined) {
  const count = Number(values.nodes);
  if (!Number.isInteger(count) || count < 2 || count > 16) fail(`--nodes ${values.nodes}: must be a whole number from 2 to 16`);
  try {
    const report = await clusterBoot(iso, { count, accel: values.accel as AccelChoice, logDir: resolve(logDir, 'cluster') });
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else {
      for (const n of report.nodes) console.log(`node ${n.node} (${n.protocol}, ${report.accel}): power-on to UP in ${n.secondsToUp.toFixed(1)} s`);
      console.log(report.clusterV.trim());
      console.log(`serial logs in ${report.logDir}`);
    }
    process.exit(0);
  } catch (error: any) {
    fail(String(error?.message ?? error));
  }
}
let failed = 0;
const reports = [];
for (const firmware of values.firmware === 'both' ? (['bios', 'uefi'] as const) : [values.firmware as 'bios' | 'uefi']) {
  const report = await singleNodeBoot(iso, { firmware, accel: values.accel as AccelChoice, logDir, medium: values.usb ? 'usb' : 'cd' })
    .catch((error) => fail(String(error?.message ?? error)));
  reports.push(report);
  if (!values.json) {
    console.log(`${firmware} (${report.accel}, ${report.medium}): shell after ${report.secondsToShell.toFixed(1)} s`);
    for (const c of report.checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}${c.ok ? '' : `\n       ${c.detail.replace(/\n/g, '\n       ')}`}`);
    console.log(`  serial log ${report.serialLog}\n  screenshot ${report.screenshot}`);
  }
  failed += report.checks.filter((c) => !c.ok).length;
}
if (values.json) console.log(JSON.stringify(reports, null, 2));
process.exit(failed ? 1 : 0);
