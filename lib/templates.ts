import ejs from 'ejs';
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from './errors.ts';
import { walk } from './hash.ts';

/**
 * Renders every *.ejs below the given roots into dest, at the same path less ".ejs". A later root
 * wins over an earlier one for the same path, so a site overrides the project's templates.
 * Returns the paths written.
 */
export async function renderTemplates(roots: string[], data: Record<string, unknown>, dest: string): Promise<string[]> {
  const chosen = new Map<string, string>();
  for (const root of roots) {
    if (!existsSync(root)) continue;
    for (const e of await walk(root)) {
      if (e.type === 'file' && e.path.endsWith('.ejs')) chosen.set(e.path.slice(0, -4), join(root, e.path));
    }
  }
  for (const [path, source] of [...chosen].sort()) {
    let text: string;
    try {
      text = await ejs.render(await readFile(source, 'utf8'), data, { filename: source, async: true, strict: false });
    } catch (error: any) {
      throw new UserError(`${source}: template error: ${String(error?.message ?? error).split('\n').pop()}`);
    }
    await mkdir(dirname(join(dest, path)), { recursive: true });
    await writeFile(join(dest, path), text, { mode: (await stat(source)).mode & 0o777 });
  }
  return [...chosen.keys()].sort();
}
