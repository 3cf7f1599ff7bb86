import { cp, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { output, run } from '../lib/exec.ts';
import { kernelHeaders } from '../lib/hostpkg.ts';
import type { BuildOptions } from '../lib/options.ts';
import { projectRoot } from '../lib/paths.ts';
import type { Stage } from '../lib/runner.ts';
import { readUnpackInfo } from './handoff.ts';

/** Out-of-tree modules the project carries as source (modules/NAME), built for the CD's kernel. */
export const sourceModules = ['ssi_compat'];
const sourceDir = join(projectRoot, 'modules');

const kernelOf = async (unpackDir: string) => (await readUnpackInfo(unpackDir)).kernelVersion;

/**
 * The project's kernel modules compiled against the CD kernel's headers (Debian's
 * linux-headers-<kver>, installed when missing). Keyed by the kernel version, the headers
 * package's version and the sources, not by the base: every base with that kernel reuses it.
 */
export const kbuild = {
  name: 'kbuild',
  module: import.meta.url,
  summary: "ssi_compat compiled against the CD kernel's headers (one build serves every base with that kernel)",
  after: ['unpack'],
  tools: ['make', 'gcc', 'strip', 'dpkg-query'],
  keyedByInputs: true,
  inputs: async (_o, upstream) => {
    const kver = await kernelOf(upstream('unpack'));
    const headers = await output('dpkg-query', ['-W', '-f', '${Version}', `linux-headers-${kver}`], { reject: false });
    return { files: [sourceDir], params: { sourceModules, kver, headers: headers.trim() } };
  },
  async run(ctx) {
    const kver = await kernelOf(ctx.from('unpack'));
    const headers = await kernelHeaders(kver, ctx.log);
    for (const name of sourceModules) {
      const dir = join(ctx.out, 'build', name);
      await cp(join(sourceDir, name), dir, { recursive: true });
      // Build paths differ between clones; keep them out of the module so it is reproducible.
      await run('make', [`-j${availableParallelism()}`, '-C', headers, `M=${dir}`, `KCFLAGS=-ffile-prefix-map=${dir}=${name}`, 'modules'], {
        env: { KBUILD_BUILD_TIMESTAMP: new Date(ctx.epoch * 1000).toUTCString(), KBUILD_BUILD_USER: 'openssi-live', KBUILD_BUILD_HOST: 'openssi-live' },
      });
      await run('strip', ['--strip-debug', '--remove-section=.BTF', join(dir, `${name}.ko`)]);
      await cp(join(dir, `${name}.ko`), join(ctx.out, `${name}.ko`));
    }
    await run('rm', ['-rf', join(ctx.out, 'build')]);
    ctx.log(`compiled ${sourceModules.join(', ')} for ${kver}`);
  },
} satisfies Stage<BuildOptions>;
