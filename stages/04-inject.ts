import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyTree } from '../lib/fsutil.ts';
import { packLayer } from '../lib/layer.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';

/** The OpenSSI layer: overlays/openssi laid into its own squashfs, stacked over the base. */
export const inject = {
  name: 'inject',
  summary: 'the OpenSSI layer: interconnect init, boot scripts (overlays/openssi)',
  after: ['unpack'],
  tools: ['mksquashfs'],
  inputs: () => ({
    files: [fileURLToPath(import.meta.url), join(overlaysDir, 'openssi'), fileURLToPath(new URL('../lib/layer.ts', import.meta.url))],
  }),
  async run(ctx) {
    const tree = join(ctx.out, 'tree');
    await copyTree(join(overlaysDir, 'openssi'), tree);
    await packLayer(tree, ctx.out, ctx.epoch);
  },
} satisfies Stage<BuildOptions>;
