import { execa } from 'execa';
import { lstat } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { walk } from './hash.ts';
import { projectRoot } from './paths.ts';

/**
 * What git says of the checkout, read once for many dates: the time of the last commit that
 * touched each file (newest first, as `git log` walks), and the paths that differ from it
 * (modified or untracked), relative to the project root.
 */
export interface RepoFacts { commitTimes: Map<string, number>; dirty: string[] }

export async function repoFacts(): Promise<RepoFacts> {
  const commitTimes = new Map<string, number>();
  const log = await execa('git', ['log', '--format=format:%x01%ct', '--name-only', '-z'], { cwd: projectRoot, reject: false });
  if (log.exitCode !== 0) return { commitTimes, dirty: [] }; // not a git checkout: times alone
  let time = 0;
  for (const token of log.stdout.split('\0')) {
    let file = token;
    if (token.startsWith('\x01')) {
      const [ct, first = ''] = token.slice(1).split('\n');
      time = Number(ct);
      file = first;
    }
    if (file && !commitTimes.has(file)) commitTimes.set(file, time);
  }
  const status = await execa('git', ['status', '--porcelain', '-z', '--untracked-files=all'], { cwd: projectRoot });
  return { commitTimes, dirty: status.stdout.split('\0').filter((rec) => rec.length > 3).map((rec) => rec.slice(3)) };
}

/**
 * The time stamped on everything a stage makes. SOURCE_DATE_EPOCH wins when set; otherwise the
 * newest of the stage's inputs: for files git tracks unchanged, the time of the last commit that
 * touched them (the same on every clone); for anything else (what git ignores, such as the cache
 * where upstream stages' outputs lie, files outside the checkout, changed or untracked files), its
 * modification time. `facts` lets a caller that dates many inputs ask git once.
 */
export async function inputsEpoch(paths: readonly string[], facts?: RepoFacts): Promise<number> {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv !== undefined && fromEnv !== '') {
    if (!/^\d+$/.test(fromEnv)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds, got '${fromEnv}'`);
    return Number(fromEnv);
  }
  const { commitTimes, dirty } = facts ?? (await repoFacts());
  let newest = 0;
  const byTime: string[] = [];
  for (const p of paths) {
    const rel = relative(projectRoot, resolve(p));
    const inside = (f: string) => rel === '' || f === rel || f.startsWith(`${rel}/`);
    let tracked = false;
    if (!rel.startsWith('..')) {
      for (const [file, time] of commitTimes) {
        if (!inside(file)) continue;
        tracked = true;
        newest = Math.max(newest, time);
      }
    }
    if (!tracked) byTime.push(p);
    else byTime.push(...dirty.filter(inside).map((f) => resolve(projectRoot, f)));
  }
  for (const p of byTime) newest = Math.max(newest, await newestMtime(p));
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
