import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../lib/errors.ts';
import { run } from '../lib/exec.ts';
import { kernelHeaders } from '../lib/hostpkg.ts';
import type { BuildOptions } from '../lib/options.ts';
import { projectRoot } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';
import { modinfo, moduleName, readModule, readModuleIndex, vermagicSample } from '../iso/modules.ts';
import { kernelIndexes, moduleFacts, textIndexNames, type ModuleFacts, type TextIndexes } from '../iso/kmod-index.ts';
import type { UnpackInfo } from './02-unpack.ts';

/** Out-of-tree modules the project carries as source, built for the base kernel. */
const sourceModules = ['ssi_compat'];
const sourceDir = join(projectRoot, 'modules');

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
 * Kernel modules for the CD's kernel: ssi_compat built against its headers and the site's
 * prebuilt modules, each checked against its vermagic, placed in lib/modules/<kver>/extra with
 * the kernel's module indexes (modules.dep, .alias, .symbols and their .bin) written with them
 * in; /etc/openssi/modules lists what loads at boot.
 */
export const modules = {
  name: 'modules',
  summary: "kernel modules: ssi_compat built for the CD's kernel, site modules; vermagic checked",
  after: ['unpack'],
  tools: ['make', 'gcc', 'strip'],
  inputs: async (o) => ({
    files: [fileURLToPath(import.meta.url), sourceDir, fileURLToPath(new URL('../iso/modules.ts', import.meta.url)), fileURLToPath(new URL('../iso/kmod-index.ts', import.meta.url)),
      ...(await siteModuleFiles(o.siteDir, o.site.modules))],
    params: { sourceModules },
  }),
  async run(ctx) {
    const unpackDir = ctx.from('unpack');
    const info: UnpackInfo = JSON.parse(await readFile(join(unpackDir, 'unpack.json'), 'utf8'));
    const kver = info.kernelVersion;
    const baseModules = join(unpackDir, info.modulesDir);
    const index = await readModuleIndex(baseModules);
    const kernelVermagic = modinfo(await readModule(join(baseModules, vermagicSample(index)))).get('vermagic') ?? '';
    const headers = await kernelHeaders(kver, ctx.log);
    const prebuilt = await siteModuleFiles(ctx.options.siteDir, ctx.options.site.modules);
    const compiling = (async () => {
      const built: string[] = [];
      for (const name of sourceModules) {
        const dir = join(ctx.out, 'build', name);
        await cp(join(sourceDir, name), dir, { recursive: true });
        // Build paths differ between clones; keep them out of the module so it is reproducible.
        await run('make', [`-j${availableParallelism()}`, '-C', headers, `M=${dir}`, `KCFLAGS=-ffile-prefix-map=${dir}=${name}`, 'modules'], {
          env: { KBUILD_BUILD_TIMESTAMP: new Date(ctx.epoch * 1000).toUTCString(), KBUILD_BUILD_USER: 'openssi-live', KBUILD_BUILD_HOST: 'openssi-live' },
        });
        await run('strip', ['--strip-debug', '--remove-section=.BTF', join(dir, `${name}.ko`)]);
        built.push(join(dir, `${name}.ko`));
      }
      return built;
    })();
    // While the compiler runs: the kernel's own indexes, with our modules' places kept.
    let indexes;
    try {
      const base = Object.fromEntries(await Promise.all(textIndexNames.map(async (n) =>
        [n, await readFile(join(baseModules, n), 'latin1').catch(() => '')]))) as unknown as TextIndexes;
      indexes = kernelIndexes(base, [...sourceModules.map((n) => `${n}.ko`), ...prebuilt.map((f) => basename(f))]
        .map((file) => ({ name: moduleName(file), path: `extra/${file}` })));
    } catch (error) {
      await compiling.catch(() => {});
      throw error;
    }
    const built = await compiling;
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
    // The kernel's indexes with ours added, written from its text indexes: no depmod, no tree.
    for (const [f, data] of Object.entries(indexes.add(facts))) {
      // The tree may hard-link unpack's files: replace, never write through a link.
      await rm(join(ctx.out, 'tree', relModules, f), { force: true });
      await writeFile(join(ctx.out, 'tree', relModules, f), data);
    }
    await rm(join(ctx.out, 'build'), { recursive: true, force: true });
    await mkdir(join(ctx.out, 'tree', 'etc', 'openssi'), { recursive: true });
    await writeFile(join(ctx.out, 'tree', 'etc', 'openssi', 'modules'), `${names.join('\n')}\n`);
    ctx.log(`${names.join(', ')} for ${kver}`);
    if (!existsSync(join(extra, 'ssi_compat.ko'))) throw new Error('modules: ssi_compat was not built');
  },
} satisfies Stage<BuildOptions>;
