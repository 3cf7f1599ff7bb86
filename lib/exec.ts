import { execa, type Options, type Result } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { UserError } from './errors.ts';

/** Which Debian package brings each host tool, for the "missing tool" message. */
const packageOf: Record<string, string> = {
  mmdebstrap: 'mmdebstrap', mksquashfs: 'squashfs-tools', unsquashfs: 'squashfs-tools',
  xorriso: 'xorriso', 'grub-mkimage': 'grub-common', mcopy: 'mtools', 'mkfs.fat': 'dosfstools',
  depmod: 'kmod', 'qemu-system-x86_64': 'qemu-system-x86', vde_switch: 'vde2', 'dpkg-deb': 'dpkg',
  'create_compressed_fs': 'cloop-utils', 'extract_compressed_fs': 'cloop-utils', shellcheck: 'shellcheck',
  gzip: 'gzip', xz: 'xz-utils', lzma: 'xz-utils', zstd: 'zstd', lz4: 'lz4', bzip2: 'bzip2', mkfifo: 'coreutils',
};

/** Aborting this stops every tool still running (Ctrl-C during a build). */
export const stopAll = new AbortController();

/** Runs a host tool with an argument array; a failure names the tool and shows its stderr tail. */
export async function run(tool: string, args: readonly string[], options: Options = {}): Promise<Result> {
  try {
    return await execa(tool, args, { stdin: 'ignore', cancelSignal: stopAll.signal, ...options });
  } catch (error: any) {
    if (error?.code === 'ENOENT') {
      const pkg = packageOf[tool];
      throw new UserError(`host tool '${tool}' not found${pkg ? ` (Debian package ${pkg})` : ''}`);
    }
    if (error?.isCanceled || stopAll.signal.aborted) throw new UserError('interrupted');
    const stderr = String(error?.stderr ?? '').trim().split('\n').slice(-12).join('\n');
    const e = new Error(`${tool} failed (exit ${error?.exitCode ?? error?.signal}): ${tool} ${args.join(' ')}\n${stderr}`);
    (e as any).stderr = error?.stderr;
    throw e;
  }
}

/** Runs a tool and returns its stdout as a string. */
export async function output(tool: string, args: readonly string[], options: Options = {}): Promise<string> {
  const r = await run(tool, args, options);
  return String(r.stdout);
}

/** Fails with one line naming every missing host tool and the Debian package that brings it. */
export async function requireTools(tools: string[]): Promise<void> {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  const found = (tool: string) => dirs.some((d) => {
    try {
      accessSync(join(d, tool), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  const missing = tools.filter((t) => !found(t));
  if (missing.length === 0) return;
  const named = missing.map((t) => (packageOf[t] ? `${t} (Debian package ${packageOf[t]})` : t));
  throw new UserError(`missing host tools: ${named.join(', ')}; \`npm run build\` installs them`);
}
