/** A word as the shell reads it: bare when it is plain, else in single quotes ('\'' for a quote). */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_.,:=/+@%-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}

/** A word as GRUB's script parser reads it: its quoting rules are the shell's (single quotes, \'). */
export const grubQuote = shellQuote;
