import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readLayerFiles } from './layer.ts';
import type { StageRecord } from '../lib/runner.ts';
import type { SiteConfig } from '../lib/site.ts';
import { layerNames } from './10-remaster.ts';
import { readBaseFiles, readBaseInfo, readPackagesInfo, readUnpackInfo } from './handoff.ts';

/** What went into an ISO: the base, each stage's digest, and every file the layers add or replace. */
export async function buildManifest(records: Map<string, StageRecord>, site: SiteConfig, iso: { path: string; sha256: string; size: number }, pack: 'layer' | 'flatten' = 'layer') {
  const dir = (name: string) => records.get(name)!.dir;
  const base = await readBaseInfo(dir('base'));
  const kernel = await readUnpackInfo(dir('unpack'));
  const added = (await readPackagesInfo(dir('packages'))).added;
  const baseFiles = new Set(await readBaseFiles(dir('unpack')));
  const layers = [];
  // Our layers follow the base's images: KNOPPIX/KNOPPIX1 and 2 on the default base.
  const images = base.remaster?.images ?? [{ path: 'KNOPPIX/KNOPPIX' }];
  const names = layerNames({ layout: base.layout, images, iso: base.remaster?.iso ?? '' });
  for (const [i, name] of ['inject', 'site'].entries()) {
    const files = (await readLayerFiles(dir(name))).filter((f) => f.type !== 'dir').map((f) => ({
      ...f, change: f.type === 'whiteout' ? 'removed' : baseFiles.has(f.path) ? 'changed' : 'added',
    }));
    layers.push({ image: pack === 'flatten' ? `merged into ${images[0].path}` : names[i], stage: name, files });
  }
  return {
    tool: 'openssi-live',
    iso,
    epoch: (records.get('pack') ?? records.get('remaster'))!.epoch,
    base: {
      source: base.source, layout: base.layout, kernelVersion: base.kernelVersion,
      ...(base.rootMd5 ? { rootMd5: base.rootMd5 } : {}), packages: kernel.packages ?? base.packages,
      ...(base.remaster ? { images: base.remaster.images.map((i) => `${i.path} (${i.format})`), menus: base.remaster.menus } : {}),
    },
    // The Debian packages the OpenSSI layer adds to a base that lacked them (packages stage).
    ...(added.length ? { addedPackages: added } : {}),
    kernel: { version: kernel.kernelVersion, from: site.kernel ? `site package ${site.kernel}` : 'base' },
    site,
    stages: Object.fromEntries([...records.values()].map((r) => [r.name, { key: r.key, cached: r.cached, seconds: Number(r.seconds.toFixed(2)) }])),
    layers,
  };
}
