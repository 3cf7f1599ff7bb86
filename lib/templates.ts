import ejs from 'ejs';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { UserError } from './errors.ts';
import { gitMode } from './fsutil.ts';
import { walk } from './hash.ts';
import { grubQuote, shellQuote } from './quote.ts';

/**
 * How `<%= %>` writes a value, per target: a template names its target in a first-line comment,
 * `<%# escape: sh -%>` or `<%# escape: grub -%>` (each value one quoted word; a list, one word
 * each); anything else (isolinux.cfg, dnsmasq's files) takes values as they are. Never HTML: the
 * site's values are checked for control characters, and HTML entities would end up in the files.
 */
const escapers: Record<string, (s: string) => string> = { sh: shellQuote, grub: grubQuote, none: (s) => s };

function escaperFor(template: string, source: string): (value: unknown) => string {
  const name = /^<%#\s*escape:\s*(\S+)\s*-?%>/.exec(template)?.[1] ?? 'none';
  const quote = escapers[name];
  if (!quote) throw new UserError(`${source}: unknown escape '${name}' (sh, grub or none)`);
  return (value) => (Array.isArray(value) ? value.map((v) => quote(String(v))).join(' ') : quote(String(value)));
}

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
      const template = await readFile(source, 'utf8');
      text = await ejs.render(template, data, { filename: source, async: true, strict: false, escape: escaperFor(template, source) });
    } catch (error: any) {
      throw new UserError(`${source}: template error: ${String(error?.message ?? error).split('\n').pop()}`);
    }
    await mkdir(dirname(join(dest, path)), { recursive: true });
    await writeFile(join(dest, path), text);
    // Executable or not, as git keeps it: the other bits of a checkout are its cloner's umask.
    await chmod(join(dest, path), gitMode((await stat(source)).mode));
  }
  return [...chosen.keys()].sort();
}
