#!/usr/bin/env tsx
// openssi-live inspect: what a live ISO is made of and how it boots, without unpacking it.
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { UserError } from './lib/errors.ts';
import { output } from './lib/exec.ts';
import { initrdParts } from './iso/initrd.ts';
import { bzImageRelease } from './iso/kernel.ts';
import { isoExtents, readBaseIso, readExtent } from './iso/layout.ts';
import { squashfsCompressor } from './iso/squashfs.ts';
import { elToritoEntries } from './iso/xorriso.ts';

const usage = `Usage: npm run inspect -- ISO [--json]

Prints a live ISO's layout (KNOPPIX or Debian live), its root images and their formats, the
kernel and its version, the initrd's parts, the El Torito boot entries, the MBR/GPT partitions
and every boot menu with its entries.`;

/** A menu's entries: isolinux LABELs with their APPEND, GRUB menuentry titles with their linux line. */
function menuEntries(text: string): { label: string; args: string }[] {
  const entries: { label: string; args: string }[] = [];
  for (const m of text.matchAll(/^\s*label\s+(\S+)[\s\S]*?^\s*append\s+(.*)$/gim)) entries.push({ label: m[1], args: m[2].trim() });
  for (const m of text.matchAll(/^\s*menuentry\s+["']([^"']+)["'][^{]*\{[\s\S]*?^\s*linux\S*\s+\S+\s*(.*)$/gm)) entries.push({ label: m[1], args: m[2].trim() });
  return entries;
}

async function inspect(iso: string) {
  const base = await readBaseIso(iso);
  const all = await isoExtents(iso, '');
  const extent = (path: string) => all.find((e) => e.path === path)!;
  const images = [];
  for (const i of base.images) {
    images.push({ path: i.path, format: i.format, bytes: i.size, ...(i.format === 'squashfs' ? { compressor: await squashfsCompressor(iso, i.offset) } : {}) });
  }
  const initrds = [];
  for (const path of base.initrd) {
    if (!extent(path)) continue;
    initrds.push({ path, parts: initrdParts(await readExtent(iso, extent(path))).map((p) => ({ ...p, files: p.files?.length })) });
  }
  const menus = [];
  for (const path of base.menus) menus.push({ path, entries: menuEntries((await readExtent(iso, extent(path))).toString('utf8')) });
  const area = await output('xorriso', ['-abort_on', 'FAILURE', '-return_with', 'FAILURE', '32', '-indev', iso, '-report_system_area', 'plain'], { all: true });
  const partitions = [...area.matchAll(/^(MBR|GPT) (?:partition|start and size)\s*:\s*(.*)$/gm)].map((m) => `${m[1]} ${m[2].trim()}`);
  return {
    iso, layout: base.layout, volumeId: base.volumeId, images,
    kernel: { path: base.kernel, version: await bzImageRelease(iso, extent(base.kernel).offset) },
    initrds, elTorito: await elToritoEntries(iso),
    hybrid: { mbr: /isohybrid|MBR/.test(area), gpt: /GPT/.test(area), partitions },
    menus,
  };
}

function print(r: Awaited<ReturnType<typeof inspect>>): void {
  const lines = [
    `${r.iso}`,
    `  layout      ${r.layout}, volume id ${r.volumeId}`,
    ...r.images.map((i) => `  image       ${i.path}: ${i.format}${i.compressor ? ` (${i.compressor})` : ''}, ${(i.bytes / 2 ** 20).toFixed(1)} MiB`),
    `  kernel      ${r.kernel.path}: ${r.kernel.version ?? 'unknown version'}`,
    ...r.initrds.map((i) => `  initrd      ${i.path}: ${i.parts.map((p) => (p.kind === 'cpio' ? `cpio (${p.files} files)` : `${p.compression} cpio`)).join(' + ')}`),
    ...r.elTorito.map((e) => `  El Torito   ${e.platform}${e.bootable ? ', bootable' : ''}, ${e.loadSize} sectors`),
    `  hybrid      MBR ${r.hybrid.mbr ? 'yes' : 'no'}, GPT ${r.hybrid.gpt ? 'yes' : 'no'}`,
    ...r.hybrid.partitions.map((p) => `              ${p}`),
    ...r.menus.flatMap((m) => [`  menu        ${m.path}`, ...m.entries.map((e) => `                ${e.label}: ${e.args}`)]),
  ];
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (error: any) {
    throw new UserError(`${error.message.split('\n')[0]} (see --help)`);
  }
  if (parsed.values.help) {
    console.log(usage);
    return;
  }
  if (parsed.positionals.length !== 1) throw new UserError('inspect takes one ISO (see --help)');
  const report = await inspect(resolve(parsed.positionals[0]));
  if (parsed.values.json) console.log(JSON.stringify(report, null, 2));
  else print(report);
}

main().catch((error) => {
  if (error instanceof UserError) {
    console.error(`openssi-live: ${error.message.replace(/^--base /, '')}`);
    process.exit(1);
  }
  console.error(`openssi-live: internal error: ${error?.stack ?? error}`);
  process.exit(70);
});
