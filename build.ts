#!/usr/bin/env tsx
// openssi-live build: turns a live CD (or the default Debian base) into a KNOPPIX/OpenSSI ISO.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from './lib/errors.ts';
import { stopAll } from './lib/exec.ts';
import { publish } from './lib/fsutil.ts';
import { buildManifest } from './stages/manifest.ts';
import type { BuildOptions } from './lib/options.ts';
import { defaultCacheDir, defaultOutPath, defaultSiteDir } from './lib/paths.ts';
import { runStages } from './lib/runner.ts';
import { loadSite } from './lib/site.ts';
import { stages } from './stages/index.ts';
import { isoName } from './stages/09-pack.ts';
import { readIsoInfo } from './stages/handoff.ts';

const usage = `Usage: npm run build -- [options]

Builds a KNOPPIX/OpenSSI live ISO. Options:
  --base ISO        start from this live ISO instead of the default Debian 12 base
  --pack MODE       with --base: layer (default; our layers go in as new compressed images,
                    the base's are reused as they are) or flatten (merge everything and
                    recompress in the base's format)
  --compressor C    flatten mode's squashfs compressor (gzip, xz, zstd, lz4, lzo; default: the base's)
  --site DIR        site folder: site.json, files/, iso/, templates/ (default overlays/sites/default)
  --out PATH        the ISO to write (default out/knoppix-openssi.iso); its manifest goes beside it
  --cache DIR       stage cache (default .cache, or $OPENSSI_LIVE_CACHE)
  --no-cache        rebuild every stage
  --mirror URL      Debian mirror for the default base (default http://deb.debian.org/debian)
  --cluster-key F   the cluster's secret key (64 hex digits); default: made once, kept in the cache
  --json            print the result as one JSON object on stdout
  -h, --help        this text

SOURCE_DATE_EPOCH, when set, stamps every date; the same inputs then give a bit-identical ISO.`;

/** The manifest's path for an ISO path: knoppix-openssi.iso → knoppix-openssi.manifest.json. */
export function manifestPath(iso: string): string {
  return join(dirname(iso), `${basename(iso).replace(/\.iso$/i, '')}.manifest.json`);
}

async function parse(argv: string[]): Promise<BuildOptions & { json: boolean }> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        base: { type: 'string' }, site: { type: 'string' }, out: { type: 'string' }, cache: { type: 'string' },
        'no-cache': { type: 'boolean' }, mirror: { type: 'string' }, 'cluster-key': { type: 'string' }, json: { type: 'boolean' },
        pack: { type: 'string' }, compressor: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (error: any) {
    throw new UserError(`${error.message.split('\n')[0]} (see --help)`);
  }
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const siteDir = resolve(values.site ?? defaultSiteDir);
  const siteStat = await stat(siteDir).catch(() => undefined);
  if (!siteStat?.isDirectory()) throw new UserError(`--site ${values.site}: no such folder`);
  // A folder with none of a site's parts is a typo for another one, not a site of defaults.
  const parts = ['site.json', 'files', 'iso', 'templates'];
  if (!parts.some((p) => existsSync(join(siteDir, p)))) {
    throw new UserError(`--site ${values.site}: not a site folder (it has none of ${parts.join(', ')})`);
  }
  const out = resolve(values.out ?? defaultOutPath);
  if (values.out === undefined) await mkdir(dirname(out), { recursive: true });
  const outDir = await stat(dirname(out)).catch(() => undefined);
  if (!outDir?.isDirectory()) throw new UserError(`--out ${values.out}: folder ${dirname(out)} does not exist`);
  if ((await stat(out).catch(() => undefined))?.isDirectory()) throw new UserError(`--out ${values.out}: is a folder; name the ISO file to write`);
  const mirror = values.mirror ?? 'http://deb.debian.org/debian';
  if (!/^(https?|file):\/\/\S+$/.test(mirror)) throw new UserError(`--mirror ${mirror}: must be an http(s):// or file:// URL`);
  const pack = values.pack ?? 'layer';
  if (pack !== 'layer' && pack !== 'flatten') throw new UserError(`--pack ${pack}: must be layer or flatten`);
  if (values.pack !== undefined && values.base === undefined) throw new UserError('--pack needs --base: the default base is always built in layers');
  if (values.compressor !== undefined && !['gzip', 'xz', 'zstd', 'lz4', 'lzo', 'lzma'].includes(values.compressor)) {
    throw new UserError(`--compressor ${values.compressor}: must be one of gzip, xz, zstd, lz4, lzo, lzma`);
  }
  if (values.compressor !== undefined && pack !== 'flatten') throw new UserError('--compressor applies to --pack flatten only');
  const cacheDir = resolve(values.cache ?? process.env.OPENSSI_LIVE_CACHE ?? defaultCacheDir);
  return {
    base: values.base === undefined ? undefined : resolve(values.base),
    siteDir,
    site: await loadSite(siteDir),
    out,
    cacheDir,
    clusterKey: resolve(values['cluster-key'] ?? join(cacheDir, 'keys', 'cluster-key')),
    clusterKeyGiven: values['cluster-key'] !== undefined,
    noCache: Boolean(values['no-cache']),
    mirror,
    pack,
    compressor: values.compressor,
    json: Boolean(values.json),
  };
}

async function main(): Promise<void> {
  const options = await parse(process.argv.slice(2));
  const started = performance.now();
  await mkdir(options.cacheDir, { recursive: true });
  const records = await runStages(stages, options, { cacheDir: options.cacheDir, noCache: options.noCache, prune: true });
  const packDir = (records.get('pack') ?? records.get('remaster'))!.dir;
  const iso = join(packDir, isoName);
  const { sha256 } = await readIsoInfo(packDir);
  const size = (await stat(iso)).size;
  const manifest = await buildManifest(records, options.site, { path: options.out, sha256, size }, options.pack);
  const manifestFile = manifestPath(options.out);
  const tmpManifest = `${manifestFile}.tmp-${process.pid}`;
  await writeFile(tmpManifest, `${JSON.stringify(manifest, null, 2)}\n`);
  try {
    await publish(iso, options.out);
    await rename(tmpManifest, manifestFile);
  } finally {
    await rm(tmpManifest, { force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  const summary = {
    iso: options.out, manifest: manifestFile, sha256, bytes: size, seconds: Number(seconds.toFixed(2)),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    stages: Object.fromEntries([...records.values()].map((r) => [r.name, { cached: r.cached, seconds: Number(r.seconds.toFixed(2)) }])),
  };
  if (options.json) console.log(JSON.stringify(summary));
  else console.error(`built ${options.out} (${(size / 2 ** 20).toFixed(0)} MiB, sha256 ${sha256.slice(0, 16)}…) in ${seconds.toFixed(1)} s`);
}

process.on('SIGINT', () => stopAll.abort());
process.on('SIGTERM', () => stopAll.abort());
main().catch((error) => {
  if (error instanceof UserError) {
    console.error(`openssi-live: ${error.message}`);
    process.exit(error.message === 'interrupted' ? 130 : 1);
  }
  console.error(`openssi-live: internal error: ${error?.stack ?? error}`);
  process.exit(70);
});
