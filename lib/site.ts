import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from './errors.ts';

/** A site's settings (site.json); every field is optional and has the default shown in README. */
export interface SiteConfig {
  clustername: string;
  initNodeName: string;
  interconnect: { network: string; initNodeIp: string };
  boot: { label: string; timeout: number; kernelArgs: string[] };
  iso: { volumeLabel: string };
  /** Prebuilt kernel modules (.ko files or folders of them), relative to the site folder. */
  modules: string[];
  /** Extra context-dependent paths (CDSLs): absolute; a trailing / marks a folder. */
  cdsl: string[];
  /** A replacement kernel package (.deb) relative to the site folder; '' keeps the base's kernel. */
  kernel: string;
  /** Modules (names) loaded from the CD's initrd, before its init mounts the root. */
  initrdModules: string[];
  /** NTP across the cluster from boot (chrony; README.ntp); ssi-ntp turns it on or off later. */
  ntp: boolean;
  /** Node 1's NFS export for hosts outside the cluster, through the CVIP (README.nfs-server);
   * clients '' leaves it off. ssi-nfs-server changes it later. */
  nfsServer: { clients: string; export: string };
  /** The CVIPs (README.CVIP), rendered to /etc/cvip.conf in OpenSSI's XML. */
  cvip: {
    routing: string;
    cvips: { ip: string; gateway: string; directors: { node: number; garpInterface: string; syncInterface: string }[] }[];
  };
}

type Rule =
  | { kind: 'string'; pattern: RegExp; why: string; default: string }
  | { kind: 'integer'; min: number; max: number; default: number }
  | { kind: 'boolean'; default: boolean }
  | { kind: 'strings'; pattern: RegExp; why: string; default: string[] }
  | { kind: 'object'; fields: Record<string, Rule> }
  | { kind: 'list'; item: Rule; min: number };

const hostname = /^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$/;
const ipv4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const cidr = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\/([89]|[12]\d|30)$/;

export const siteSchema: Rule = {
  kind: 'object',
  fields: {
    clustername: { kind: 'string', pattern: hostname, why: 'a host name: letters, digits and inner hyphens, at most 63', default: 'KNOPPIX-OpenSSI' },
    initNodeName: { kind: 'string', pattern: hostname, why: 'a host name: letters, digits and inner hyphens, at most 63', default: 'node1' },
    interconnect: {
      kind: 'object',
      fields: {
        network: { kind: 'string', pattern: cidr, why: 'an IPv4 network as A.B.C.D/N, N from 8 to 30', default: '10.0.0.0/8' },
        initNodeIp: { kind: 'string', pattern: ipv4, why: 'an IPv4 address', default: '10.0.0.1' },
      },
    },
    boot: {
      kind: 'object',
      fields: {
        label: { kind: 'string', pattern: /^[ -~]{1,40}$/, why: '1 to 40 printable ASCII characters', default: 'KNOPPIX/OpenSSI' },
        timeout: { kind: 'integer', min: 0, max: 600, default: 3 },
        kernelArgs: { kind: 'strings', pattern: /^[!-~]{1,200}$/, why: 'kernel arguments without spaces or control characters', default: [] },
      },
    },
    modules: { kind: 'strings', pattern: /^(?!\/)(?!.*(^|\/)\.\.(\/|$))[ -~]{1,255}$/, why: 'paths inside the site folder (relative, no ..)', default: [] },
    kernel: { kind: 'string', pattern: /^$|^(?!\/)(?!.*(^|\/)\.\.(\/|$))[ -~]{1,251}\.deb$/, why: 'a .deb file inside the site folder (relative path, no ..)', default: '' },
    initrdModules: { kind: 'strings', pattern: /^[A-Za-z0-9_-]{1,64}$/, why: 'kernel module names (letters, digits, _ and -)', default: [] },
    cdsl: { kind: 'strings', pattern: /^\/(?!.*(^|\/)\.\.?(\/|$))(?!(proc|sys|dev|cluster|run)(\/|$))[A-Za-z0-9._+\/-]{1,200}$/, why: 'absolute paths outside /proc, /sys, /dev, /run and /cluster, without . or ..', default: [] },
    ntp: { kind: 'boolean', default: false },
    nfsServer: {
      kind: 'object',
      fields: {
        clients: { kind: 'string', pattern: new RegExp(`^$|^${ipv4.source.slice(1, -1)}(/([0-9]|[12]\\d|3[0-2]))?$`), why: 'an IPv4 address or network (A.B.C.D/N), or empty for no export', default: '' },
        export: { kind: 'string', pattern: /^\/cluster(\/(?!\.\.?(\/|$))[A-Za-z0-9._+-]+)+$/, why: 'a folder inside /cluster, without . or ..', default: '/cluster/export' },
      },
    },
    cvip: {
      kind: 'object',
      fields: {
        routing: { kind: 'string', pattern: /^(DR|NAT)$/, why: 'DR or NAT (README.CVIP)', default: 'DR' },
        cvips: {
          kind: 'list',
          min: 0,
          item: {
            kind: 'object',
            fields: {
              ip: { kind: 'string', pattern: ipv4, why: 'an IPv4 address', default: '' },
              gateway: { kind: 'string', pattern: new RegExp(`^$|${ipv4.source}`), why: 'an IPv4 address or empty', default: '' },
              directors: {
                kind: 'list',
                min: 1,
                item: {
                  kind: 'object',
                  fields: {
                    node: { kind: 'integer', min: 1, max: 65535, default: 0 },
                    garpInterface: { kind: 'string', pattern: /^$|^[A-Za-z0-9_.-]{1,15}$/, why: 'an interface name or empty', default: '' },
                    syncInterface: { kind: 'string', pattern: /^$|^[A-Za-z0-9_.-]{1,15}$/, why: 'an interface name or empty', default: '' },
                  },
                },
              },
            },
          },
        },
      },
    },
    iso: {
      kind: 'object',
      fields: {
        volumeLabel: { kind: 'string', pattern: /^[A-Z0-9_]{1,32}$/, why: '1 to 32 of A-Z, 0-9 and _ (ISO 9660 d-characters)', default: 'KNOPPIX' },
      },
    },
  },
};

function check(rule: Rule, value: unknown, path: string, file: string): unknown {
  const fail = (why: string): never => {
    throw new UserError(path ? `${file}: ${path}: ${why}` : `${file}: ${why}`);
  };
  switch (rule.kind) {
    case 'object': {
      if (value === undefined) value = {};
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('must be an object');
      const obj = value as Record<string, unknown>;
      for (const k of Object.keys(obj)) {
        if (!(k in rule.fields)) fail(`unknown field '${k}' (known: ${Object.keys(rule.fields).join(', ')})`);
      }
      const out: Record<string, unknown> = {};
      for (const [k, r] of Object.entries(rule.fields)) out[k] = check(r, obj[k], path ? `${path}.${k}` : k, file);
      return out;
    }
    case 'string':
      if (value === undefined) return rule.default;
      if (typeof value !== 'string') fail(`must be a string, got ${JSON.stringify(value)}`);
      if (!rule.pattern.test(value as string)) fail(`must be ${rule.why}, got ${JSON.stringify(value)}`);
      return value;
    case 'integer':
      if (value === undefined) return rule.default;
      if (!Number.isInteger(value) || (value as number) < rule.min || (value as number) > rule.max) {
        fail(`must be a whole number from ${rule.min} to ${rule.max}, got ${JSON.stringify(value)}`);
      }
      return value;
    case 'boolean':
      if (value === undefined) return rule.default;
      if (typeof value !== 'boolean') fail(`must be true or false, got ${JSON.stringify(value)}`);
      return value;
    case 'list': {
      if (value === undefined) value = [];
      if (!Array.isArray(value)) fail(`must be a list, got ${JSON.stringify(value)}`);
      const items = value as unknown[];
      if (items.length < rule.min) fail(`must list at least ${rule.min}`);
      return items.map((v, i) => check(rule.item, v, `${path}[${i}]`, file));
    }
    case 'strings':
      if (value === undefined) return rule.default;
      if (!Array.isArray(value)) fail(`must be a list of strings, got ${JSON.stringify(value)}`);
      (value as unknown[]).forEach((v, i) => {
        if (typeof v !== 'string' || !rule.pattern.test(v)) fail(`[${i}] must be ${rule.why}, got ${JSON.stringify(v)}`);
      });
      return value;
  }
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

/** Validates parsed site settings, fills defaults, and checks the fields against each other. */
export function validateSite(raw: unknown, file = 'site.json'): SiteConfig {
  const site = check(siteSchema, raw, '', file) as SiteConfig;
  const [net, bits] = site.interconnect.network.split('/');
  const mask = bits === '0' ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  if ((ipToInt(net) & mask) >>> 0 !== ipToInt(net)) {
    throw new UserError(`${file}: interconnect.network: host bits are set in ${site.interconnect.network}`);
  }
  if (!site.interconnect.network.startsWith('10.')) {
    throw new UserError(`${file}: interconnect.network: the interconnect must be inside 10.0.0.0/8 (as OpenSSI's), got ${site.interconnect.network}`);
  }
  const ip = ipToInt(site.interconnect.initNodeIp);
  const host = ip & ~mask;
  if (((ip & mask) >>> 0) !== ipToInt(net) || host === 0 || host === (~mask >>> 0)) {
    throw new UserError(`${file}: interconnect.initNodeIp: ${site.interconnect.initNodeIp} is not a host address in ${site.interconnect.network}`);
  }
  if (site.initNodeName.toLowerCase() === site.clustername.toLowerCase()) {
    throw new UserError(`${file}: initNodeName: must differ from clustername (both are names in /etc/hosts)`);
  }
  return site;
}

/** Reads and validates <siteDir>/site.json; a site without one takes every default. */
export async function loadSite(siteDir: string): Promise<SiteConfig> {
  const file = join(siteDir, 'site.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error: any) {
    if (error?.code === 'ENOENT') return validateSite({}, file);
    throw new UserError(`${file}: cannot read: ${error?.code ?? error}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error: any) {
    throw new UserError(`${file}: not valid JSON: ${error?.message}`);
  }
  return validateSite(raw, file);
}

/** Prefix length of the interconnect, for `ip addr add IP/N`. */
export function prefixLength(site: SiteConfig): number {
  return Number(site.interconnect.network.split('/')[1]);
}
