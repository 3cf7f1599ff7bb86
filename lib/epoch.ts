import { execa } from 'execa';
import { lstat } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { walk } from './hash.ts';
import { projectRoot } from './paths.ts';

/**
 * The time stamped on everything a stage makes. SOURCE_DATE_EPOCH wins when set; otherwise the
 * newest of the stage's inputs: for files git tracks unchanged, the time of the last commit that
 * touched them (the same on every clone); for anything else, its modification time.
 */
export async function inputsEpoch(paths: readonly string[]): Promise<number> {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d+$/.test(fromEnv)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds, got '${fromEnv}'`);
    return Number(fromEnv);
  }
  let newest = 0;
  const underRoot = paths.filter((p) => !relative(projectRoot, p).startsWith('..'));
  // What git ignores (the cache, where upstream stages' outputs lie) has no commit time: its
  // own times count, wherever the cache is (a cache in the checkout gave another epoch, so
  // another ISO, than one in /tmp, once the base was newer than the last commit).
  const ignored = underRoot.length === 0 ? undefined : await execa('git', ['check-ignore', '-z', '--stdin'], {
    cwd: projectRoot, input: underRoot.map((p) => relative(projectRoot, p)).join('\0'), reject: false,
  });
  const ignoredPaths = new Set(ignored?.exitCode === 0 ? ignored.stdout.split('\0').filter(Boolean).map((r) => resolve(projectRoot, r)) : []);
  const inRepo = underRoot.filter((p) => !ignoredPaths.has(resolve(p)));
  const outside = paths.filter((p) => !inRepo.includes(p));
  const dirty = new Set<string>();
  if (inRepo.length > 0) {
    const git = await execa('git', ['log', '-1', '--format=%ct', '--', ...inRepo], { cwd: projectRoot, reject: false });
    if (git.exitCode === 0 && /^\d+$/.test(git.stdout.trim())) {
      newest = Number(git.stdout.trim());
      const status = await execa('git', ['status', '--porcelain', '-z', '--untracked-files=all', '--', ...inRepo], { cwd: projectRoot });
      for (const rec of status.stdout.split('\0')) if (rec.length > 3) dirty.add(`${projectRoot}/${rec.slice(3)}`);
    } else {
      outside.push(...inRepo); // not a git checkout: fall back to modification times
    }
  }
  for (const p of [...outside, ...dirty]) newest = Math.max(newest, await newestMtime(p));
  return newest || 315532800; // 1980-01-01: the floor of FAT and zip dates, if nothing has a time
}

async function newestMtime(path: string): Promise<number> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return 0;
  let newest = Math.floor(st.mtimeMs / 1000);
  if (st.isDirectory()) {
    for (const e of await walk(path)) {
      const s = await lstat(`${path}/${e.path}`);
      newest = Math.max(newest, Math.floor(s.mtimeMs / 1000));
    }
  }
  return newest;
}
