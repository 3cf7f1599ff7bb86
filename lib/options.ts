import type { SiteConfig } from './site.ts';

/** What `build` was asked for, after validation. */
export interface BuildOptions {
  /** A live ISO to start from; undefined means the default Debian base. */
  base?: string;
  siteDir: string;
  site: SiteConfig;
  out: string;
  cacheDir: string;
  noCache: boolean;
  /** Debian mirror for the default base. */
  mirror: string;
  /** File holding the cluster's Ed25519 seed (64 hex digits); made in the cache when absent. */
  clusterKey: string;
  clusterKeyGiven: boolean;
  /** With --base: add our layers as images (layer) or merge and recompress (flatten). */
  pack: 'layer' | 'flatten';
  /** Flatten mode's squashfs compressor; undefined keeps the base's. */
  compressor?: string;
}
