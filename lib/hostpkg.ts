import { existsSync } from 'node:fs';
import { UserError } from './errors.ts';
import { run } from './exec.ts';

/**
 * The build tree of a Debian kernel's headers, installed on demand: the package name depends on
 * the base's kernel, so it cannot be in setup.mjs's list. Root installs it; others are told how.
 */
export async function kernelHeaders(kver: string, log: (m: string) => void): Promise<string> {
  const dir = `/usr/src/linux-headers-${kver}`;
  if (existsSync(`${dir}/Makefile`)) return dir;
  const pkg = `linux-headers-${kver}`;
  if (process.getuid?.() !== 0) {
    throw new UserError(`kernel headers for ${kver} are missing; run as root: apt-get install -y ${pkg}`);
  }
  log(`installing ${pkg} (headers for the CD's kernel)`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  try {
    await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env });
  } catch {
    await run('apt-get', ['update'], { env });
    await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], { env }).catch(() => {
      throw new UserError(`cannot install ${pkg}: kernel ${kver} has no headers package in the configured Debian mirrors`);
    });
  }
  if (!existsSync(`${dir}/Makefile`)) throw new UserError(`${pkg} installed but ${dir} is missing`);
  return dir;
}
