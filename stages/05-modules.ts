import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { UserError } from '../lib/errors.ts';
import { run } from '../lib/exec.ts';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { modinfo, moduleName, readModule, readModuleIndex, vermagicSample } from '../iso/modules.ts';
import { addModules, binIndexNames, moduleFacts, textIndexNames, type BinIndexes, type ModuleFacts, type TextIndexes } from '../iso/kmod-index.ts';
import { sourceModules } from './04-kbuild.ts';
import { readUnpackInfo } from './handoff.ts';
import { contentsDigest } from '../lib/hash.ts';

/** The site's prebuilt modules: each .ko named, and every .ko in each folder named. */
export async function siteModuleFiles(siteDir: string, paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const full = resolve(siteDir, p);
    const st = await stat(full).catch(() => undefined);
    if (!st) throw new UserError(`${join(siteDir, 'site.json')}: modules: ${p}: no such file or folder`);
    if (st.isDirectory()) {
      const kos = (await readdir(full)).filter((n) => /\.ko$/.test(n)).sort();
      if (kos.length === 0) throw new UserError(`${join(siteDir, 'site.json')}: modules: ${p}: folder holds no .ko file`);
      files.push(...kos.map((n) => join(full, n)));
    } else if (/\.ko$/.test(full)) files.push(full);
    else throw new UserError(`${join(siteDir, 'site.json')}: modules: ${p}: not a .ko file or a folder`);
  }
  return files;
}

/** Refuses a module whose vermagic differs from the kernel it will run on, naming both. */
export function checkVermagic(file: string, ko: Buffer, kernelVermagic: string, kver: string): void {
  let info;
  try {
    info = modinfo(ko);
  } catch (error: any) {
    throw new UserError(`${file}: ${error.message}`);
  }
  const vermagic = (info.get('vermagic') ?? '').trim();
  if (vermagic !== kernelVermagic.trim()) {
    throw new UserError(`${file}: built for kernel '${vermagic || 'unknown'}', but the CD's kernel ${kver} is '${kernelVermagic.trim()}'`);
  }
}

/**
 * Kernel modules for the CD's kernel: ssi_compat from the kbuild stage and the site's prebuilt
 * modules, each checked against its vermagic, placed in lib/modules/<kver>/extra with
 * the kernel's module indexes (modules.dep, .alias, .symbols and their .bin) written with them
 * in; /etc/openssi/modules lists what loads at boot.
 */
export const modules = {
  name: 'modules',
  module: import.meta.url,
  summary: "kernel modules on the CD: ssi_compat and the site's, vermagic checked, the kernel's indexes with them in",
  after: ['unpack', 'kbuild'],
  tools: [],
  // What it reads of the base's kernel, not the base: every base with that kernel reuses it.
  keyedByInputs: true,
  inputs: async (o, upstream) => {
    const info = await readUnpackInfo(upstream('unpack'));
    const baseModules = join(upstream('unpack'), info.modulesDir);
    // A replacement kernel's whole tree goes on the CD: the site's package it came from counts.
    const replaced = info.kernelVersion !== info.baseKernelVersion && o.site.kernel;
    const read = replaced ? [] : [...textIndexNames, ...binIndexNames, vermagicSample(await readModuleIndex(baseModules))].map((f) => join(baseModules, f));
    return {
      files: [...await siteModuleFiles(o.siteDir, o.site.modules), ...(replaced ? [resolve(o.siteDir, replaced)] : [])],
      params: {
        kver: info.kernelVersion, baseKernelVersion: info.baseKernelVersion, imageModulesDir: info.imageModulesDir,
        // The kernel's indexes in unpack's output, by contents alone (not dated: unpack made them).
        read: await contentsDigest(read),
      },
    };
  },
  async run(ctx) {
    const unpackDir = ctx.from('unpack');
    const info = await readUnpackInfo(unpackDir);
    const kver = info.kernelVersion;
    const baseModules = join(unpackDir, info.modulesDir);
    const index = await readModuleIndex(baseModules);
    const kernelVermagic = modinfo(await readModule(join(baseModules, vermagicSample(index)))).get('vermagic') ?? '';
    const prebuilt = await siteModuleFiles(ctx.options.siteDir, ctx.options.site.modules);
    const built = sourceModules.map((name) => join(ctx.from('kbuild'), `${name}.ko`));
    const base = Object.fromEntries(await Promise.all(textIndexNames.map(async (n) =>
      [n, await readFile(join(baseModules, n), 'latin1').catch(() => '')]))) as unknown as TextIndexes;
    const bins = binIndexNames.every((n) => existsSync(join(baseModules, n)))
      ? Object.fromEntries(await Promise.all(binIndexNames.map(async (n) => [n, await readFile(join(baseModules, n))]))) as unknown as BinIndexes
      : undefined;
    const relModules = join(info.imageModulesDir, kver);
    const extra = join(ctx.out, 'tree', relModules, 'extra');
    if (kver !== info.baseKernelVersion) {
      // A replacement kernel: its whole modules tree goes on the CD (hard links, no copy).
      await mkdir(join(ctx.out, 'tree', info.imageModulesDir), { recursive: true });
      await run('cp', ['-al', baseModules, join(ctx.out, 'tree', relModules)]);
    }
    await mkdir(extra, { recursive: true });
    const names: string[] = [];
    const facts: ModuleFacts[] = [];
    for (const file of [...built, ...prebuilt]) {
      const ko = await readFile(file);
      checkVermagic(file, ko, kernelVermagic, kver);
      const name = moduleName(file);
      if (names.includes(name)) throw new UserError(`${file}: a module named ${name} is already on the CD`);
      if (index.paths.has(name)) ctx.log(`${name} replaces the base kernel's module of that name`);
      names.push(name);
      facts.push(moduleFacts(ko, `extra/${basename(file)}`));
      await writeFile(join(extra, basename(file)), ko);
    }
    // The kernel's indexes with ours added (its .bin files extended, or written from its text
    // indexes): no depmod, no modules tree.
    for (const [f, data] of Object.entries(addModules(base, facts, bins))) {
      // The tree may hard-link unpack's files: replace, never write through a link.
      await rm(join(ctx.out, 'tree', relModules, f), { force: true });
      await writeFile(join(ctx.out, 'tree', relModules, f), data);
    }
    await mkdir(join(ctx.out, 'tree', 'etc', 'openssi'), { recursive: true });
    await writeFile(join(ctx.out, 'tree', 'etc', 'openssi', 'modules'), `${names.join('\n')}\n`);
    ctx.log(`${names.join(', ')} in ${relModules}/extra`);
    if (!existsSync(join(extra, 'ssi_compat.ko'))) throw new Error('modules: ssi_compat was not built');
  },
} satisfies Stage<BuildOptions>;
