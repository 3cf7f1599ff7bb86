import { constants } from 'node:fs';
import { access, open, stat } from 'node:fs/promises';
import { UserError } from '../lib/errors.ts';
import { output } from '../lib/exec.ts';
import { isIso9660 } from './xorriso.ts';

const sector = 2048;

/** Whether volume descriptor 17 is an El Torito boot record (how a CD says it can boot). */
export async function hasElToritoRecord(iso: string): Promise<boolean> {
  const fh = await open(iso, 'r');
  try {
    const buf = Buffer.alloc(32);
    const { bytesRead } = await fh.read(buf, 0, 32, 17 * sector);
    return bytesRead === 32 && buf[0] === 0 && buf.toString('latin1', 1, 6) === 'CD001' &&
      buf.toString('latin1', 7, 30) === 'EL TORITO SPECIFICATION';
  } finally {
    await fh.close();
  }
}

/** Every file path in an ISO (Rock Ridge names), without the leading slash. */
export async function isoFiles(iso: string): Promise<string[]> {
  const text = await output('xorriso', ['-indev', iso, '-find', '/', '-type', 'f'], { maxBuffer: 256 << 20 });
  return text.split('\n').filter((l) => l.startsWith("'/")).map((l) => l.slice(2, -1));
}

/**
 * Checks a user's base ISO and names its layout; each way it can be unusable is one clear error.
 */
export async function describeBaseIso(iso: string): Promise<string> {
  const st = await stat(iso).catch((e) => {
    throw new UserError(`--base ${iso}: ${e.code === 'ENOENT' ? 'no such file' : `cannot read (${e.code})`}`);
  });
  if (!st.isFile()) throw new UserError(`--base ${iso}: not a file`);
  await access(iso, constants.R_OK).catch(() => {
    throw new UserError(`--base ${iso}: cannot read (permission denied)`);
  });
  if (st.size < 18 * sector || !(await isIso9660(iso))) {
    throw new UserError(`--base ${iso}: not an ISO 9660 image (no CD001 volume descriptor at 32 KiB)`);
  }
  if (!(await hasElToritoRecord(iso))) {
    throw new UserError(`--base ${iso}: the ISO has no El Torito boot record, so it cannot boot`);
  }
  const files = await isoFiles(iso);
  if (files.includes('KNOPPIX/KNOPPIX')) return 'KNOPPIX layout (KNOPPIX/KNOPPIX)';
  const live = files.filter((f) => /^live\/[^/]+\.squashfs$/.test(f));
  if (live.length > 0) return `Debian live layout (${live.join(', ')})`;
  const top = [...new Set(files.map((f) => f.split('/')[0]))].sort().slice(0, 12);
  throw new UserError(`--base ${iso}: unknown layout: neither KNOPPIX/KNOPPIX nor live/*.squashfs (top level: ${top.join(', ') || 'empty'})`);
}
