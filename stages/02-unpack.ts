import { existsSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { extractSquashfs, listSquashfs } from '../iso/squashfs.ts';
import { isStaticElf } from '../iso/elf.ts';
import type { BaseInfo } from './01-base.ts';

export interface UnpackInfo {
  kernelVersion: string;
  /** The base's lib/modules/<kver>, relative to the stage folder. */
  modulesDir: string;
  /** A static busybox for minirt, taken from the base. */
  busybox: string;
}

/** Takes out of the base's compressed root what later stages build against: modules, busybox. */
export const unpack: Stage<BuildOptions> = {
  name: 'unpack',
  summary: "the base kernel's modules tree and a static busybox, out of the base's root image",
  after: ['base'],
  tools: ['unsquashfs'],
  inputs: () => ({ files: [fileURLToPath(import.meta.url), fileURLToPath(new URL('../iso/squashfs.ts', import.meta.url))] }),
  async run(ctx) {
    const baseDir = ctx.from('base');
    const info: BaseInfo = JSON.parse(await readFile(join(baseDir, 'base.json'), 'utf8'));
    const kver = info.kernelVersion;
    const root = join(ctx.out, 'root');
    await mkdir(root, { recursive: true });
    // Merged-/usr systems keep these under usr/, older ones at the top; unsquashfs skips the absent.
    const modules = [`usr/lib/modules/${kver}`, `lib/modules/${kver}`];
    const busyboxes = ['usr/bin/busybox', 'bin/busybox'];
    await extractSquashfs(join(baseDir, info.root), root, [...modules, ...busyboxes]);
    const modulesDir = modules.find((p) => existsSync(join(root, p, 'modules.dep')));
    if (!modulesDir) throw new Error(`unpack: the base has no modules for its kernel ${kver}`);
    const busybox = busyboxes.find((p) => isStaticElf(join(root, p)));
    if (!busybox) throw new Error('unpack: the base has no static busybox (Debian package busybox-static)');
    const result: UnpackInfo = { kernelVersion: kver, modulesDir: join('root', modulesDir), busybox: join('root', busybox) };
    // The base's paths, so the manifest can tell a file the layers add from one they replace.
    await writeFile(join(ctx.out, 'base-files.txt'), `${(await listSquashfs(join(baseDir, info.root))).join('\n')}\n`);
    await writeFile(join(ctx.out, 'unpack.json'), `${JSON.stringify(result, null, 2)}\n`);
  },
};
