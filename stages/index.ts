import type { BuildOptions } from '../lib/options.ts';
import type { Stage } from '../lib/runner.ts';
import { base } from './01-base.ts';
import { unpack } from './02-unpack.ts';
import { minirt } from './03-minirt.ts';
import { inject } from './04-inject.ts';
import { site } from './05-site.ts';
import { pack } from './06-pack.ts';

/** The build, in run order (README "How a build runs" lists them the same way). */
export const stages: Stage<BuildOptions>[] = [base, unpack, minirt, inject, site, pack];
