import { run } from '../lib/exec.ts';
import { UserError } from '../lib/errors.ts';

/** Unpacks a Debian package's files (not its scripts) into dest; a file that is not a .deb is named. */
export async function extractDeb(deb: string, dest: string, what = deb): Promise<void> {
  try {
    await run('dpkg-deb', ['--extract', deb, dest]);
  } catch (error: any) {
    const why = String(error?.stderr ?? error?.message ?? '').split('\n').find((l) => l.trim()) ?? 'unreadable';
    throw new UserError(`${what}: not a Debian package (${why.replace(/^dpkg-deb: (error: )?/, '').trim()})`);
  }
}
