import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inputsEpoch, repoFacts } from './epoch.ts';
import { pathDigest, textDigest } from './hash.ts';
import { requireTools } from './exec.ts';
import { moduleSources, sourcesDigest } from './sources.ts';
import { requireHostFiles, type HostFileName } from './host.ts';

/** What a stage declares it reads. Everything here goes into the stage's cache key. */
export interface StageInputs {
  /** Files and folders whose contents the stage reads. Its code is not listed: see Stage.module. */
  files: string[];
  /** Settings the stage's output depends on; JSON-serialisable. */
  params?: unknown;
}

export interface StageContext<Options> {
  options: Options;
  /** This stage's output folder: a temporary name until the stage succeeds. */
  out: string;
  /** Output folder of an earlier stage named in `after`. */
  from(stage: string): string;
  /** Seconds since 1970 to stamp on everything this stage makes (reproducible builds). */
  epoch: number;
  log(message: string): void;
}

export interface Stage<Options> {
  name: string;
  /**
   * The stage's module (its `import.meta.url`): every file it imports, found by esbuild, and the
   * versions of the npm packages among them are part of the key, so no edit can serve stale output.
   */
  module: string;
  summary: string;
  /** Earlier stages whose outputs this one reads. */
  after: string[];
  /** Host programs the stage runs; all are checked before the build starts. */
  tools: string[];
  /** Host files the stage reads (lib/host-deps.json); all are checked before the build starts. */
  hostFiles?: HostFileName[];
  /** Whether the stage applies to this build (default: always); a stage that does not is skipped. */
  when?(options: Options): boolean;
  /** What it reads; `upstream(name)` is the output folder of a stage in `after`, for inputs read from there. */
  inputs(options: Options, upstream: (stage: string) => string): StageInputs | Promise<StageInputs>;
  /**
   * The key is the declared inputs, not the upstream stages' keys: the inputs name all the stage
   * reads from upstream, so builds from other bases reuse its output (a kernel module compiled
   * for a kernel serves every base with that kernel). Upstream stages keyed by their inputs too
   * still count, by key and date: their keys name exactly what they made, whatever the base.
   */
  keyedByInputs?: boolean;
  run(ctx: StageContext<Options>): Promise<void>;
}

export interface StageRecord {
  name: string;
  key: string;
  epoch: number;
  cached: boolean;
  seconds: number;
  dir: string;
  /** Whether its key is its declared inputs alone (Stage.keyedByInputs). */
  keyedByInputs: boolean;
}

interface Recorded { key: string; epoch: number }

/**
 * Runs stages in order. Each stage's output lives in cache/<stage>/<key>, where key digests the
 * stage's declared inputs and its upstream keys (only the inputs for a stage keyed by them);
 * an existing complete folder is reused. A stage
 * writes to a temporary folder that is renamed only on success, so an interrupted build leaves
 * the cache as it was.
 */
export async function runStages<Options>(
  stages: Stage<Options>[],
  options: Options,
  settings: { cacheDir: string; noCache?: boolean; print?: (line: string) => void; prune?: boolean },
): Promise<Map<string, StageRecord>> {
  const print = settings.print ?? ((line: string) => process.stderr.write(`${line}\n`));
  // What stages and their tools create gets its modes from them, not from the caller's umask
  // (umask 002 gave another ISO).
  process.umask(0o022);
  const applicable = stages.filter((s) => s.when?.(options) ?? true);
  requireTools([...new Set(applicable.flatMap((s) => s.tools))]);
  requireHostFiles([...new Set(applicable.flatMap((s) => s.hostFiles ?? []))]);
  const done = new Map<string, StageRecord>();
  // Every stage's import graph at once (esbuild works them out in parallel; each is kept for
  // its stage's key below), and its code dated from one look at git.
  for (const stage of applicable) moduleSources(stage.module).catch(() => {});
  const repo = await repoFacts();
  let pruning: Promise<void> | undefined;
  let index = 0;
  for (const stage of applicable) {
    index += 1;
    const started = performance.now();
    const upstreamAll = stage.after.map((name) => {
      const rec = done.get(name);
      if (!rec) throw new Error(`stage ${stage.name} runs after ${name}, which has not run`);
      return rec;
    });
    const upstreamDir = (name: string) => {
      const rec = upstreamAll.find((u) => u.name === name);
      if (!rec) throw new Error(`stage ${stage.name} reads ${name} without declaring it in 'after'`);
      return rec.dir;
    };
    const declared = await stage.inputs(options, upstreamDir);
    const upstream = stage.keyedByInputs ? upstreamAll.filter((u) => u.keyedByInputs) : upstreamAll;
    const fileDigests = await Promise.all(declared.files.map((f) => pathDigest(f)));
    const code = await moduleSources(stage.module);
    const ownEpoch = await inputsEpoch([...declared.files, ...code.files], repo);
    const epoch = Math.max(ownEpoch, ...upstream.map((u) => u.epoch));
    const key = textDigest(JSON.stringify({
      stage: stage.name,
      files: fileDigests, // digests only: the same inputs in another clone or folder give the same key
      code: await sourcesDigest(stage.module),
      params: declared.params ?? null,
      upstream: upstream.map((u) => [u.name, u.key]),
      epoch,
    })).slice(0, 24);
    const stageDir = join(settings.cacheDir, 'stages', stage.name);
    const dir = join(stageDir, key);
    const label = `[${index}/${applicable.length}] ${stage.name.padEnd(8)}`;
    const complete = join(dir, '.complete.json');
    if (!settings.noCache && existsSync(complete)) {
      const now = new Date();
      await utimes(complete, now, now); // marks it recently used, for pruning
      const seconds = (performance.now() - started) / 1000;
      print(`${label} cached  ${seconds.toFixed(1).padStart(6)} s  ${stage.summary}`);
      done.set(stage.name, { name: stage.name, key, epoch, cached: true, seconds, dir, keyedByInputs: Boolean(stage.keyedByInputs) });
      continue;
    }
    print(`${label} running ...      ${stage.summary}`);
    // Every key this build uses is known once its last stage starts: the stale entries go while
    // it runs (deleting an old gigabyte ISO takes a noticeable part of a second).
    if (settings.prune && index === applicable.length) pruning = pruneCache(settings.cacheDir, new Map<string, { key: string }>([...done, [stage.name, { key }]]));
    await mkdir(stageDir, { recursive: true });
    await removeStaleTemporaries(stageDir, print);
    const tmp = join(stageDir, `.tmp-${key}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    // Not a set-group-ID folder, whatever the cache's is: folders made below would inherit the
    // bit, and it would show in the images (a cache in such a folder gave another ISO).
    await chmod(tmp, 0o755);
    const ctx: StageContext<Options> = {
      options,
      out: tmp,
      epoch,
      from(name) {
        if (!stage.after.includes(name)) throw new Error(`stage ${stage.name} reads ${name} without declaring it in 'after'`);
        return done.get(name)!.dir;
      },
      log: (message) => print(`${' '.repeat(label.length)} ${message}`),
    };
    try {
      await stage.run(ctx);
      await writeFile(join(tmp, '.complete.json'), `${JSON.stringify({ stage: stage.name, key, epoch } satisfies Recorded & { stage: string })}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    } catch (error) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
      await pruning?.catch(() => {});
      throw error;
    }
    const seconds = (performance.now() - started) / 1000;
    print(`${label} built   ${seconds.toFixed(1).padStart(6)} s  ${stage.summary}`);
    done.set(stage.name, { name: stage.name, key, epoch, cached: false, seconds, dir, keyedByInputs: Boolean(stage.keyedByInputs) });
  }
  if (settings.prune) await (pruning ?? pruneCache(settings.cacheDir, done));
  return done;
}

/**
 * Removes temporaries of builds that are no longer running (interrupted, killed). One that cannot
 * go (a killed mmdebstrap can leave a bind mount inside) is named and left: this build's own
 * temporary has another name.
 */
async function removeStaleTemporaries(stageDir: string, print: (line: string) => void): Promise<void> {
  for (const name of await readdir(stageDir)) {
    const m = /^\.tmp-.*-(\d+)$/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && isAlive(pid)) continue;
    await rm(join(stageDir, name), { recursive: true, force: true }).catch((error) => {
      print(`cannot remove ${join(stageDir, name)}, left by an interrupted build (${error.code ?? error.message}; a mount inside? umount -R it)`);
    });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Keeps the entries this build used and the `keep` most recently used others of each stage. */
export async function pruneCache(cacheDir: string, used: Map<string, { key: string }>, keep = 2): Promise<void> {
  const root = join(cacheDir, 'stages');
  if (!existsSync(root)) return;
  for (const stage of await readdir(root)) {
    const entries: { name: string; used: number }[] = [];
    for (const name of await readdir(join(root, stage))) {
      if (name.startsWith('.') || used.get(stage)?.key === name) continue;
      const mark = await stat(join(root, stage, name, '.complete.json')).catch(() => undefined);
      entries.push({ name, used: mark?.mtimeMs ?? 0 });
    }
    entries.sort((a, b) => b.used - a.used);
    for (const e of entries.slice(keep)) await rm(join(root, stage, e.name), { recursive: true, force: true });
  }
}
