import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { base } from './01-base.ts';
import { unpack } from './02-unpack.ts';
import { minirt } from './03-minirt.ts';
import { kbuild } from './04-kbuild.ts';
import { modules } from './05-modules.ts';
import { inject } from './06-inject.ts';
import { site } from './07-site.ts';
import { pack } from './08-pack.ts';
import { remaster } from './09-remaster.ts';

/**
 * The build, in run order (README "How a build runs" lists them the same way). pack makes the
 * default base's ISO; remaster rewrites a user's ISO (--base) instead.
 */
export const stages: Stage<BuildOptions>[] = [base, unpack, minirt, kbuild, modules, inject, site, pack, remaster];
