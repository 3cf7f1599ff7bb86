import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { authorizedKeyLine, clusterKeySeed, dropbearPrivateKey } from '../lib/clusterkey.ts';
import { copyTree } from '../lib/fsutil.ts';
import { packLayer } from './layer.ts';
import type { BuildOptions } from '../lib/options.ts';
import { overlaysDir, templatesDir } from '../lib/paths.ts';
import { run } from '../lib/exec.ts';
import { UserError } from '../lib/errors.ts';
import { renderTemplates } from '../lib/templates.ts';
import type { Stage } from '../lib/runner.ts';
import { prefixLength, type SiteConfig } from '../lib/site.ts';
import { nodeOneCdslFolders } from './cdsl.ts';

/** Extra kernel arguments every boot entry carries: consoles first, then the site's own. */
export function kernelArgList(siteArgs: string[]): string[] {
  return ['console=tty0', 'console=ttyS0,115200n8', ...siteArgs];
}

/** The image's own reader of /etc/cvip.conf: the build checks a site's CVIPs with it. */
const cvipConfig = join(overlaysDir, 'openssi', 'usr', 'lib', 'openssi', 'cvip-config');
/** The CD's clustertab when the site brings none: the directors a site names must be in it. */
const imageClustertab = join(overlaysDir, 'openssi', 'cluster', 'etc', 'clustertab');

/**
 * The site's CVIPs (rendered to /cluster/etc/cvip.conf) checked as every node checks the file when
 * it applies it: by cvip-config, against the interconnect and the CD's clustertab (the site's, or
 * the image's), node 1 included.
 */
async function checkCvips(tree: string, site: SiteConfig, siteJson: string): Promise<void> {
  const file = join(tree, 'cluster', 'etc', 'cvip.conf');
  const siteTab = join(tree, 'cluster', 'etc', 'clustertab');
  const tab = await readFile(existsSync(siteTab) ? siteTab : imageClustertab, 'utf8');
  const nodes = [`1=${site.interconnect.initNodeIp}`, ...tab.split('\n').map((l) => l.split('\t')).filter((f) => /^\d+$/.test(f[0]?.trim() ?? '')).map((f) => `${f[0].trim()}=${f[1]}`)];
  const r = await run('sh', [cvipConfig, file], { env: { CVIP_NETWORK: site.interconnect.network, CVIP_NODES: nodes.join(' ') }, reject: false });
  if (r.exitCode !== 0) throw new UserError(`${siteJson}: cvip: ${String(r.stderr).trim().split(`${file}: `).join('')}`);
}

/** The site's extra CDSLs: a symlink into /cluster/node{nodenum} each, and their list. */
async function addCdsls(tree: string, paths: string[]): Promise<void> {
  await mkdir(join(tree, 'etc', 'openssi'), { recursive: true });
  await writeFile(join(tree, 'etc', 'openssi', 'cdsl.site'), paths.map((p) => `${p}\n`).join(''));
  for (const p of paths) {
    const path = p.replace(/\/+$/, '');
    const link = join(tree, path);
    await mkdir(dirname(link), { recursive: true });
    await rm(link, { recursive: true, force: true });
    await symlink(`/cluster/node{nodenum}${path}`, link);
  }
  await nodeOneCdslFolders(tree, paths);
}

/**
 * The cluster key: onnode's client key on every node, and the only key its servers accept. The
 * private key goes in the ISO tree (openssi/cluster-key), never in a layer: layers are served to
 * netbooting nodes, while node 1 hands the key only to clustertab members (/usr/lib/openssi/cluster-key).
 */
async function addClusterKey(tree: string, iso: string, seed: Buffer, clustername: string): Promise<void> {
  await mkdir(join(iso, 'openssi'), { recursive: true });
  await writeFile(join(iso, 'openssi', 'cluster-key'), dropbearPrivateKey(seed), { mode: 0o600 });
  await mkdir(join(tree, 'root', '.ssh'), { recursive: true, mode: 0o700 });
  await writeFile(join(tree, 'root', '.ssh', 'authorized_keys'),
    authorizedKeyLine(seed, 'no-port-forwarding,no-agent-forwarding,no-X11-forwarding', `openssi-cluster@${clustername}`), { mode: 0o600 });
}

function netmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

/**
 * The site layer: the site's files/ plus the rendered rootfs templates, in their own squashfs;
 * and the ISO-tree additions: the site's iso/ plus the rendered boot menus.
 */
export const site = {
  name: 'site',
  module: import.meta.url,
  summary: 'the site layer and boot menus (site.json, files/, iso/, templates/)',
  after: [],
  tools: ['mksquashfs', 'sh'],
  inputs: async (o) => ({
    files: [o.siteDir, templatesDir, cvipConfig, imageClustertab],
    // The key's digest, not the key: the cache key must change with it but never hold it.
    params: { site: o.site, clusterKey: createHash('sha256').update(await clusterKeySeed(o.clusterKey, !o.clusterKeyGiven)).digest('hex') },
  }),
  async run(ctx) {
    const { site: config, siteDir } = ctx.options;
    const args = kernelArgList(config.boot.kernelArgs);
    const data = { site: config, prefix: prefixLength(config), netmask: netmask(prefixLength(config)), kernelArgs: args.join(' '), kernelArgList: args };
    const tree = join(ctx.out, 'tree');
    const iso = join(ctx.out, 'iso');
    await mkdir(tree, { recursive: true });
    await mkdir(iso, { recursive: true });
    if (existsSync(join(siteDir, 'files'))) await copyTree(join(siteDir, 'files'), tree);
    if (existsSync(join(siteDir, 'iso'))) await copyTree(join(siteDir, 'iso'), iso);
    await renderTemplates([join(templatesDir, 'rootfs'), join(siteDir, 'templates', 'rootfs')], data, tree);
    await renderTemplates([join(templatesDir, 'iso'), join(siteDir, 'templates', 'iso')], data, iso);
    await checkCvips(tree, config, join(siteDir, 'site.json'));
    await addCdsls(tree, config.cdsl);
    await addClusterKey(tree, iso, await clusterKeySeed(ctx.options.clusterKey, !ctx.options.clusterKeyGiven), config.clustername);
    await packLayer(tree, ctx.out, ctx.epoch);
  },
} satisfies Stage<BuildOptions>;
