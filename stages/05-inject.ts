import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyTree } from '../lib/fsutil.ts';
import { packLayer } from '../lib/layer.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';

/** The OpenSSI layer: overlays/openssi and the kernel modules, in their own squashfs over the base. */
export const inject = {
  name: 'inject',
  summary: 'the OpenSSI layer: overlays/openssi (userland, boot scripts, docs) and the modules',
  after: ['modules'],
  tools: ['mksquashfs'],
  inputs: () => ({
    files: [fileURLToPath(import.meta.url), join(overlaysDir, 'openssi'), join(overlaysDir, 'openssi.hide'), fileURLToPath(new URL('../lib/layer.ts', import.meta.url))],
  }),
  async run(ctx) {
    const tree = join(ctx.out, 'tree');
    await copyTree(join(overlaysDir, 'openssi'), tree);
    await copyTree(join(ctx.from('modules'), 'tree'), tree);
    const hide = (await readFile(join(overlaysDir, 'openssi.hide'), 'utf8')).split('\n').filter((l) => l.startsWith('/'));
    await packLayer(tree, ctx.out, ctx.epoch, hide);
  },
} satisfies Stage<BuildOptions>;
