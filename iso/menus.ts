import { grubQuote } from '../lib/quote.ts';

/**
 * Adds kernel arguments to every boot entry of a menu, keeping each entry's own: isolinux and
 * syslinux APPEND lines (an entry with a KERNEL but no APPEND gets one), GRUB linux lines.
 * Arguments an entry already has are not added twice.
 */
export function addKernelArgs(text: string, format: 'syslinux' | 'grub', args: string[]): string {
  const add = (line: string) => {
    const have = new Set(line.trim().split(/\s+/));
    // GRUB parses its lines like a shell: an argument with a quote or a $ is quoted for it.
    const extra = args.map(format === 'grub' ? grubQuote : (a: string) => a).filter((a) => !have.has(a));
    return extra.length ? `${line.replace(/\s+$/, '')} ${extra.join(' ')}` : line;
  };
  const lines = text.split('\n');
  if (format === 'grub') return lines.map((l) => (/^\s*linux(efi|16)?\s+\S/.test(l) ? add(l) : l)).join('\n');
  const out: string[] = [];
  // An isolinux LABEL block runs to the next LABEL; remember where its KERNEL line was.
  let kernelAt = -1;
  let appended = false;
  const close = () => {
    if (kernelAt >= 0 && !appended) {
      const indent = /^\s*/.exec(out[kernelAt])![0];
      out.splice(kernelAt + 1, 0, `${indent}APPEND ${args.join(' ')}`);
    }
    kernelAt = -1;
    appended = false;
  };
  for (const line of lines) {
    if (/^\s*LABEL\s/i.test(line)) close();
    if (/^\s*(KERNEL|LINUX)\s+\S/i.test(line) && !/\.c32\s*$/i.test(line)) kernelAt = out.length;
    if (/^\s*APPEND(\s|$)/i.test(line)) {
      appended = true;
      out.push(kernelAt >= 0 ? add(line) : line);
      continue;
    }
    out.push(line);
  }
  close();
  return out.join('\n');
}

/** Which kind of menu a file is, by its name. */
export function menuFormat(path: string): 'syslinux' | 'grub' {
  return /(^|\/)grub\//.test(path) ? 'grub' : 'syslinux';
}

/**
 * Gives a top-level menu that would wait forever for a key (no timeout, or 0) a timeout, so the
 * CD boots unattended as a cluster node must; a menu with a timeout of its own keeps it.
 */
export function ensureTimeout(text: string, format: 'syslinux' | 'grub', seconds: number): string {
  if (format === 'syslinux') {
    const value = Math.max(1, seconds * 10); // tenths of a second; 0 would mean forever
    if (/^\s*timeout\s+[1-9]/im.test(text)) return text;
    if (/^\s*timeout\s+0\s*$/im.test(text)) return text.replace(/^(\s*)timeout\s+0\s*$/im, `$1timeout ${value}`);
    return `timeout ${value}\n${text}`;
  }
  if (/^\s*set\s+timeout=["']?[0-9]/m.test(text) && !/^\s*set\s+timeout=["']?-1/m.test(text)) return text;
  return `${text.replace(/\n*$/, '\n')}set timeout=${seconds}\n`;
}

/** Whether a menu is where the boot loader starts (isolinux.cfg, syslinux.cfg, boot/grub/grub.cfg). */
export function isTopMenu(path: string): boolean {
  return /(^|\/)(isolinux|syslinux)\.cfg$/.test(path) || path === 'boot/grub/grub.cfg';
}
