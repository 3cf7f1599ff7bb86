import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { base } from './01-base.ts';
import { unpack } from './02-unpack.ts';
import { minirt } from './03-minirt.ts';
import { modules } from './04-modules.ts';
import { inject } from './05-inject.ts';
import { site } from './06-site.ts';
import { pack } from './07-pack.ts';
import { remaster } from './08-remaster.ts';

/**
 * The build, in run order (README "How a build runs" lists them the same way). pack makes the
 * default base's ISO; remaster rewrites a user's ISO (--base) instead.
 */
export const stages: Stage<BuildOptions>[] = [base, unpack, minirt, modules, inject, site, pack, remaster];
