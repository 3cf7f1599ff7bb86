import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** sha256 of a file, streamed so large images never sit in memory. */
export async function fileDigest(path: string, algorithm = 'sha256'): Promise<string> {
  const hash = createHash(algorithm);
  // A small file in one read: a stream costs about a millisecond a file, which a layer of two
  // thousand files (a remaster's added packages) felt as seconds.
  if ((await stat(path)).size <= 16 << 20) return hash.update(await readFile(path)).digest('hex');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk);
  return hash.digest('hex');
}

export function textDigest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export interface TreeEntry {
  path: string; // relative, '/'-separated
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size: number;
  target?: string;
}

/** Every entry below dir, sorted by path (stable across machines). */
export async function walk(dir: string, prefix = ''): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const names = (await readdir(join(dir, prefix))).sort();
  for (const name of names) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const st = await lstat(join(dir, rel));
    if (st.isSymbolicLink()) {
      out.push({ path: rel, type: 'symlink', mode: 0o777, size: 0, target: await readlink(join(dir, rel)) });
    } else if (st.isDirectory()) {
      out.push({ path: rel, type: 'dir', mode: st.mode & 0o7777, size: 0 });
      out.push(...(await walk(dir, rel)));
    } else if (st.isFile()) {
      out.push({ path: rel, type: 'file', mode: st.mode & 0o7777, size: st.size });
    }
  }
  return out;
}

/**
 * Digest of a file or folder: names, kinds, permission bits and contents. With modes 'git', only
 * the executable bit of the permissions counts (all git keeps: a checkout's other bits come
 * from the umask of whoever cloned it). A path that does not exist digests as "absent", so
 * adding it later changes the digest.
 */
export async function pathDigest(path: string, o: { modes?: 'all' | 'git' } = {}): Promise<string> {
  const hash = createHash('sha256');
  const st = await lstat(path).catch(() => undefined);
  if (!st) return textDigest(`absent:${path}`);
  if (!st.isDirectory()) return o.modes === 'git' ? fileDigest(path) : textDigest(`${st.mode & 0o7777} ${await fileDigest(path)}`);
  for (const e of await walk(path)) {
    const mode = o.modes === 'git' ? (e.mode & 0o100 ? 'x' : '-') : e.mode.toString(8);
    const body = e.type === 'file' ? await fileDigest(join(path, e.path)) : e.target ?? '';
    hash.update(`${e.type} ${mode} ${e.path} ${body}\n`);
  }
  return hash.digest('hex');
}

/**
 * One digest of several files' or folders' contents (pathDigest each, in order): for a stage's
 * key, of what it reads in an upstream stage's output, whose files' times are that build's.
 */
export async function contentsDigest(paths: string[]): Promise<string> {
  return textDigest(JSON.stringify(await Promise.all(paths.map((p) => pathDigest(p)))));
}
