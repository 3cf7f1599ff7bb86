import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { copyTree } from '../lib/fsutil.ts';
import { packLayer } from './layer.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';
import { readBaseFiles, readPackagesInfo, readUnpackInfo } from './handoff.ts';
import { nodeOneCdslFolders } from './cdsl.ts';

/**
 * openssi.hide's paths of this base: a line is an absolute path, or a pattern with * (any
 * characters but /) matched against the base's files, so that a service link hides whatever
 * its start number is on this base (/etc/rc2.d/S*chrony).
 */
export function hiddenPaths(lines: string[], baseFiles: string[]): string[] {
  const hide: string[] = [];
  for (const line of lines.map((l) => l.trim()).filter((l) => l.startsWith('/'))) {
    if (!line.includes('*')) {
      hide.push(line);
      continue;
    }
    const pattern = new RegExp(`^${line.slice(1).split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*')}$`);
    hide.push(...baseFiles.filter((f) => pattern.test(f)).map((f) => `/${f}`));
  }
  return hide;
}

/**
 * What the layer takes from the base: the base's files openssi.hide names, and with a
 * replacement kernel (whose modules came with the modules stage) the base's own modules tree.
 */
async function baseFacts(unpackDir: string): Promise<{ hidden: string[] }> {
  const hideLines = (await readFile(join(overlaysDir, 'openssi.hide'), 'utf8')).split('\n');
  const hidden = hiddenPaths(hideLines, await readBaseFiles(unpackDir));
  const kernel = await readUnpackInfo(unpackDir);
  if (kernel.kernelVersion !== kernel.baseKernelVersion) hidden.push(`/${kernel.imageModulesDir}/${kernel.baseKernelVersion}`);
  return { hidden };
}

/**
 * The OpenSSI layer: overlays/openssi, the kernel modules, and for a remaster the Debian packages
 * the base lacked, in their own squashfs over the base.
 */
export const inject = {
  name: 'inject',
  module: import.meta.url,
  summary: "the OpenSSI layer: overlays/openssi (userland, boot scripts, docs), the modules, a remaster's added packages",
  after: ['unpack', 'modules', 'packages'],
  tools: ['mksquashfs'],
  // modules and packages count by their keys (keyed by their inputs too); of unpack's record,
  // what is used below: another base with that kernel, those packages and those hidden files
  // reuses the layer.
  keyedByInputs: true,
  inputs: async (_o, upstream) => ({
    files: [join(overlaysDir, 'openssi'), join(overlaysDir, 'openssi.hide')],
    params: await baseFacts(upstream('unpack')),
  }),
  async run(ctx) {
    const tree = join(ctx.out, 'tree');
    // A remaster's added Debian packages first: our files (their settings) go over them.
    const added = await readPackagesInfo(ctx.from('packages'));
    await copyTree(join(ctx.from('packages'), 'tree'), tree);
    const hideLines = (await readFile(join(overlaysDir, 'openssi.hide'), 'utf8')).split('\n');
    // What a pattern names among the added packages goes too (their own start links: a base
    // without dnsmasq gets Debian's runlevel-2 link with the package).
    const addedFiles = await readdir(tree, { recursive: true });
    for (const path of hiddenPaths(hideLines.filter((l) => l.includes('*')), addedFiles)) await rm(join(tree, path));
    await copyTree(join(overlaysDir, 'openssi'), tree, { modes: 'git' });
    await copyTree(join(ctx.from('modules'), 'tree'), tree);
    await nodeOneCdslFolders(tree, (await readFile(join(tree, 'etc', 'openssi', 'cdsl'), 'utf8')).split('\n'));
    const { hidden } = await baseFacts(ctx.from('unpack'));
    await packLayer(tree, ctx.out, ctx.epoch, [...added.whiteouts, ...hidden]);
  },
} satisfies Stage<BuildOptions>;
