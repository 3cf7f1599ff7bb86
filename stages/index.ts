import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { base } from './01-base.ts';
import { unpack } from './02-unpack.ts';
import { minirt } from './03-minirt.ts';
import { kbuild } from './04-kbuild.ts';
import { modules } from './05-modules.ts';
import { packages } from './06-packages.ts';
import { inject } from './07-inject.ts';
import { site } from './08-site.ts';
import { pack } from './09-pack.ts';
import { remaster } from './10-remaster.ts';

/**
 * The build, in run order (README "How a build runs" lists them the same way). pack makes the
 * default base's ISO; remaster rewrites a user's ISO (--base) instead.
 */
export const stages: Stage<BuildOptions>[] = [base, unpack, minirt, kbuild, modules, packages, inject, site, pack, remaster];
