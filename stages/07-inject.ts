import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyTree } from '../lib/fsutil.ts';
import { packLayer } from './layer.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';
import { readPackagesInfo, readUnpackInfo } from './handoff.ts';
import { nodeOneCdslFolders } from './cdsl.ts';

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
  inputs: () => ({
    files: [join(overlaysDir, 'openssi'), join(overlaysDir, 'openssi.hide')],
  }),
  async run(ctx) {
    const tree = join(ctx.out, 'tree');
    // A remaster's added Debian packages first: our files (their settings) go over them.
    const added = await readPackagesInfo(ctx.from('packages'));
    await copyTree(join(ctx.from('packages'), 'tree'), tree);
    await copyTree(join(overlaysDir, 'openssi'), tree, { modes: 'git' });
    await copyTree(join(ctx.from('modules'), 'tree'), tree);
    await nodeOneCdslFolders(tree, (await readFile(join(tree, 'etc', 'openssi', 'cdsl'), 'utf8')).split('\n'));
    const hide = [...added.whiteouts, ...(await readFile(join(overlaysDir, 'openssi.hide'), 'utf8')).split('\n').filter((l) => l.startsWith('/'))];
    const kernel = await readUnpackInfo(ctx.from('unpack'));
    // A replacement kernel's modules came with the modules stage; the base's go out of sight.
    if (kernel.kernelVersion !== kernel.baseKernelVersion) hide.push(`/${kernel.imageModulesDir}/${kernel.baseKernelVersion}`);
    await packLayer(tree, ctx.out, ctx.epoch, hide);
  },
} satisfies Stage<BuildOptions>;
