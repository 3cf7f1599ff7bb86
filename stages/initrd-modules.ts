import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { entriesFromTree, newcArchive } from '../iso/cpio.ts';
import { appendToInitrd, initrdMembers } from '../iso/initrd.ts';
import { moduleClosure, readModule, readModuleIndex } from '../iso/modules.ts';
import { UserError } from '../lib/errors.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { BuildOptions } from '../lib/options.ts';
import { readUnpackInfo } from './handoff.ts';

/** Source files the result depends on (for a stage's cache key). */
/** What initrdWithModules reads besides code: the initrd's init. */
export const initrdModulesInputs = [join(overlaysDir, 'initrd')];

/**
 * What initrdWithModules needs from the pipeline: the site's names and its site.json (for
 * errors), and where the CD kernel's modules are: the modules stage's tree first (its
 * modules.dep covers all), then unpack's; unpack's static busybox.
 */
export async function initrdModuleSources(options: BuildOptions, unpackDir: string, modulesDir: string) {
  const info = await readUnpackInfo(unpackDir);
  return {
    names: options.site.initrdModules,
    siteFile: join(options.siteDir, 'site.json'),
    kver: info.kernelVersion,
    trees: [join(modulesDir, 'tree', info.imageModulesDir, info.kernelVersion), join(unpackDir, info.modulesDir)],
    busybox: join(unpackDir, info.busybox),
  };
}

/**
 * A CD's initrd with the site's initrdModules added: one more archive after it holding our
 * /init (overlays/initrd/init), the initrd's own /init kept as /openssi/init.base, a static
 * busybox, and the modules in load order. The initrd's own bytes stay as they are.
 */
export async function initrdWithModules(o: {
  initrd: Buffer; what: string; siteFile: string; names: string[]; kver: string;
  /** Folders of module trees to look in, first match wins; the first holds modules.dep. */
  trees: string[]; busybox: string; scratch: string; epoch: number;
}): Promise<Buffer> {
  const members = await initrdMembers(o.initrd).catch((error) => {
    throw new UserError(`${o.what}: cannot unpack the initrd: ${String(error?.message).split('\n')[0]}`);
  });
  const init = members.get('init');
  if (!init) throw new UserError(`${o.what}: the initrd has no /init to hand over to`);
  const { order, missing } = moduleClosure(await readModuleIndex(o.trees[0]), o.names);
  if (missing.length) throw new UserError(`${o.siteFile}: initrdModules: ${missing.join(', ')}: kernel ${o.kver} has no such module`);
  const root = o.scratch;
  await mkdir(join(root, 'openssi', 'bin'), { recursive: true });
  await mkdir(join(root, 'openssi', 'modules'), { recursive: true });
  await copyFile(join(overlaysDir, 'initrd', 'init'), join(root, 'init'));
  if ((init.mode & 0o170000) === 0o120000) {
    const target = init.data.toString('utf8');
    await symlink(target.startsWith('/') ? target : `/${target}`, join(root, 'openssi', 'init.base'));
  } else {
    await writeFile(join(root, 'openssi', 'init.base'), init.data, { mode: init.mode & 0o7777 });
  }
  await copyFile(o.busybox, join(root, 'openssi', 'bin', 'busybox'));
  const names: string[] = [];
  for (const path of order) {
    const source = o.trees.map((t) => join(t, path)).find((f) => existsSync(f));
    if (!source) throw new Error(`initrd modules: ${path} is in modules.dep but in no modules tree`);
    const name = basename(path).replace(/(\.ko)\.(xz|zst|gz)$/, '$1');
    await writeFile(join(root, 'openssi', 'modules', name), await readModule(source), { mode: 0o644 });
    names.push(name);
  }
  await writeFile(join(root, 'openssi', 'modules', 'order'), `${names.join('\n')}\n`);
  return appendToInitrd(o.initrd, await newcArchive(await entriesFromTree(root), o.epoch));
}
