import { elfSection, elfSymbols } from './elf.ts';
import { modinfoFields, moduleName } from './modules.ts';

/*
 * kmod's module indexes: the text files depmod writes (modules.dep, .alias, .symbols, .softdep,
 * .devname) and the binary tries modprobe reads (modules.dep.bin, .alias.bin, .symbols.bin).
 * Given a kernel's indexes and a few more modules, `addModules` writes what depmod would for the
 * tree with those modules added, without the tree: a remaster then needs a few small files from
 * the base's root instead of its whole modules folder.
 */

const MAGIC = 0xb007f457;
const VERSION = 0x00020001;
const NODE_PREFIX = 0x80000000;
const NODE_VALUES = 0x40000000;
const NODE_CHILDS = 0x20000000;
const NODE_MASK = 0x0fffffff;

export interface IndexValue { priority: number; value: string }
/** A child is a node in memory, or (extending a file) the reference to one left where it is. */
interface TrieNode { prefix: string; values: IndexValue[]; children: Map<number, TrieNode | number> }

/** Values of one key stay sorted by priority; an equal one goes before those already there, as in depmod. */
function addValue(values: IndexValue[], value: string, priority: number): void {
  const at = values.findIndex((v) => v.priority >= priority);
  values.splice(at < 0 ? values.length : at, 0, { priority, value });
}

function checkAscii(text: string, what: string): void {
  // eslint-disable-next-line no-control-regex
  if (/[^\x01-\x7f]/.test(text)) throw new Error(`module index: ${what} ${JSON.stringify(text)}: only 7-bit ASCII is allowed`);
}

/**
 * The trie of kmod's index format (a radix tree, one child slot per character), built like
 * depmod's; or an existing index file extended, its nodes off the new keys' paths kept in place.
 */
export class IndexWriter {
  private root: TrieNode = { prefix: '', values: [], children: new Map() };
  private base?: Buffer;
  private what = 'module index';
  private changed = false;

  /**
   * An index file to add keys to: only the nodes on the added keys' paths are read (and written
   * again, after the file's end); the others stay where they are, referenced by their offsets.
   */
  static extending(data: Buffer, what = 'module index'): IndexWriter {
    const writer = new IndexWriter();
    writer.base = data;
    writer.what = what;
    checkHeader(data, what);
    writer.root = writer.load(data.readUInt32BE(8));
    return writer;
  }

  private load(ref: number): TrieNode {
    const n = parseNode(this.base!, ref, this.what);
    return { prefix: n.prefix, values: n.values, children: new Map([...n.children].filter(([, r]) => r !== 0)) };
  }

  private child(node: TrieNode, ch: number): TrieNode | undefined {
    const c = node.children.get(ch);
    if (typeof c !== 'number') return c;
    const loaded = this.load(c);
    node.children.set(ch, loaded);
    return loaded;
  }

  insert(key: string, value: string, priority: number): void {
    checkAscii(key, 'key');
    checkAscii(value, 'value');
    this.changed = true;
    let node = this.root;
    let i = 0;
    for (;;) {
      let j = 0;
      for (; j < node.prefix.length; j++) {
        if (node.prefix.charCodeAt(j) === key.charCodeAt(i + j)) continue;
        // The key leaves the node's prefix here: split it, the rest becomes the only child.
        const child: TrieNode = { prefix: node.prefix.slice(j + 1), values: node.values, children: node.children };
        node.children = new Map([[node.prefix.charCodeAt(j), child]]);
        node.values = [];
        node.prefix = node.prefix.slice(0, j);
        break;
      }
      i += j;
      if (i === key.length) return addValue(node.values, value, priority);
      const ch = key.charCodeAt(i);
      const next = this.child(node, ch);
      if (!next) {
        node.children.set(ch, { prefix: key.slice(i + 1), values: [{ priority, value }], children: new Map() });
        return;
      }
      node = next;
      i += 1;
    }
  }

  /** The index file: header, then the nodes children first (post-order), as depmod writes it. */
  toBuffer(): Buffer {
    if (this.base && !this.changed) return Buffer.from(this.base);
    let out = Buffer.alloc(Math.max(1 << 20, 2 * (this.base?.length ?? 0)));
    let offset = 12;
    if (this.base) offset += this.base.copy(out, 12, 12);
    const room = (n: number) => {
      if (offset + n <= out.length) return;
      const bigger = Buffer.alloc(Math.max(out.length * 2, offset + n));
      out.copy(bigger, 0, 0, offset);
      out = bigger;
    };
    const string = (text: string) => {
      room(text.length + 1);
      offset += out.write(text, offset, 'latin1');
      out[offset++] = 0;
    };
    const u32 = (n: number) => {
      room(4);
      offset = out.writeUInt32BE(n >>> 0, offset);
    };
    const write = (node: TrieNode): number => {
      let first = 128;
      let last = -1;
      for (const c of node.children.keys()) {
        if (c < first) first = c;
        if (c > last) last = c;
      }
      const childOffsets: number[] = [];
      for (let c = first; c <= last; c++) {
        const child = node.children.get(c);
        childOffsets.push(child === undefined ? 0 : typeof child === 'number' ? child : write(child));
      }
      let at = offset;
      if (node.prefix) {
        string(node.prefix);
        at |= NODE_PREFIX;
      }
      if (childOffsets.length) {
        room(2);
        out[offset++] = first;
        out[offset++] = last;
        childOffsets.forEach(u32);
        at |= NODE_CHILDS;
      }
      if (node.values.length) {
        u32(node.values.length);
        for (const v of node.values) {
          u32(v.priority);
          string(v.value);
        }
        at |= NODE_VALUES;
      }
      return at >>> 0;
    };
    const rootOffset = write(this.root);
    out.writeUInt32BE(MAGIC, 0);
    out.writeUInt32BE(VERSION, 4);
    out.writeUInt32BE(rootOffset, 8);
    return out.subarray(0, offset);
  }
}

function checkHeader(data: Buffer, what: string): void {
  if (data.length < 12 || data.readUInt32BE(0) !== MAGIC) throw new Error(`${what}: not a kmod index (bad magic)`);
  if (data.readUInt32BE(4) >>> 16 !== VERSION >>> 16) throw new Error(`${what}: kmod index version ${data.readUInt32BE(4).toString(16)} is not 2.x`);
}

/** One node of an index file: its prefix, its children's references by character, its values. */
function parseNode(data: Buffer, ref: number, what: string): { prefix: string; children: Map<number, number>; values: IndexValue[] } {
  const cstring = (at: number) => {
    const end = data.indexOf(0, at);
    if (end < 0) throw new Error(`${what}: string at ${at} runs past the end`);
    return { text: data.toString('latin1', at, end), next: end + 1 };
  };
  let at = ref & NODE_MASK;
  if (at < 12 || at >= data.length) throw new Error(`${what}: node offset ${at} outside the file`);
  let prefix = '';
  if (ref & NODE_PREFIX) {
    const s = cstring(at);
    prefix = s.text;
    at = s.next;
  }
  const children = new Map<number, number>();
  if (ref & NODE_CHILDS) {
    const first = data[at];
    const last = data[at + 1];
    for (let c = first; c <= last; c++) children.set(c, data.readUInt32BE(at + 2 + 4 * (c - first)));
    at += 2 + 4 * (last - first + 1);
  }
  const values: IndexValue[] = [];
  if (ref & NODE_VALUES) {
    const count = data.readUInt32BE(at);
    at += 4;
    for (let k = 0; k < count; k++) {
      const priority = data.readUInt32BE(at);
      const s = cstring(at + 4);
      values.push({ priority, value: s.text });
      at = s.next;
    }
  }
  return { prefix, children, values };
}

/** Every key of an index file with its values, in key order. */
export function readIndex(data: Buffer, what = 'module index'): Map<string, IndexValue[]> {
  checkHeader(data, what);
  const out = new Map<string, IndexValue[]>();
  const visit = (ref: number, key: string) => {
    const node = parseNode(data, ref, what);
    key += node.prefix;
    if (node.values.length) out.set(key, node.values);
    for (const [c, child] of node.children) if (child) visit(child, key + String.fromCharCode(c));
  };
  visit(data.readUInt32BE(8), '');
  return out;
}

/** What depmod reads from a module file. */
export interface ModuleFacts {
  /** Path relative to lib/modules/<kver>, as modules.dep names it. */
  path: string;
  name: string;
  /** .modinfo's alias= and softdep= values, in the file's order. */
  aliases: string[];
  softdeps: string[];
  /** Symbols it exports, and symbols it leaves undefined (others must provide them). */
  exports: string[];
  needs: string[];
}

/** Reads a (not compressed) .ko the way depmod does. */
export function moduleFacts(ko: Buffer, path: string): ModuleFacts {
  let fields: [string, string][];
  try {
    fields = modinfoFields(ko);
  } catch (error: any) {
    throw new Error(`${path}: ${error.message}`);
  }
  const symbols = elfSymbols(ko);
  const strings = elfSection(ko, '__ksymtab_strings');
  const exports = strings
    ? strings.toString('latin1').split('\0').filter(Boolean)
    : symbols.filter((s) => s.defined && s.name.startsWith('__ksymtab_')).map((s) => s.name.slice('__ksymtab_'.length));
  return {
    path,
    name: moduleName(path),
    aliases: fields.filter(([k]) => k === 'alias').map(([, v]) => v),
    softdeps: fields.filter(([k]) => k === 'softdep').map(([, v]) => v),
    exports,
    needs: [...new Set(symbols.filter((s) => !s.defined && s.name).map((s) => s.name))],
  };
}

/** depmod's alias keys: '-' read as '_' except inside [...] (a character class); undefined if unbalanced. */
function aliasKey(alias: string): string | undefined {
  let out = '';
  for (let i = 0; i < alias.length; i++) {
    const c = alias[i];
    if (c === ']') return undefined;
    if (c === '[') {
      const end = alias.indexOf(']', i);
      if (end < 0) return undefined;
      out += alias.slice(i, end + 1);
      i = end;
    } else out += c === '-' ? '_' : c;
  }
  return out;
}

const lines = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#'));
const headerOf = (text: string) => text.split('\n').filter((l) => l.startsWith('#')).map((l) => `${l}\n`).join('');

export interface TextIndexes {
  'modules.dep': string;
  'modules.alias': string;
  'modules.symbols': string;
  'modules.softdep': string;
  'modules.devname': string;
}
export const textIndexNames: (keyof TextIndexes)[] = ['modules.dep', 'modules.alias', 'modules.symbols', 'modules.softdep', 'modules.devname'];
export interface BinIndexes { 'modules.dep.bin': Buffer; 'modules.alias.bin': Buffer; 'modules.symbols.bin': Buffer }
export const binIndexNames: (keyof BinIndexes)[] = ['modules.dep.bin', 'modules.alias.bin', 'modules.symbols.bin'];

/**
 * The indexes depmod would write for a kernel's modules plus `added` (after all of the kernel's
 * own, in the order given; one named like a kernel module replaces it). Text files keep the
 * kernel's lines as they are and append the new ones; the .bin files are written from them.
 */
export function addModules(base: TextIndexes, added: ModuleFacts[], baseBins?: BinIndexes): Record<string, Buffer> {
  const replaced = new Set(added.map((m) => m.name));
  const all = lines(base['modules.dep']).map((l) => {
    const colon = l.indexOf(':');
    return { path: l.slice(0, colon), deps: l.slice(colon + 1).trim().split(/\s+/).filter(Boolean) };
  });
  // A kernel module an added one replaces: its users now need the added one's file.
  const newPath = new Map(all.filter((d) => replaced.has(moduleName(d.path)))
    .map((d) => [d.path, added.find((m) => m.name === moduleName(d.path))!.path]));
  const depLines = all.filter((d) => !newPath.has(d.path)).map((d) => ({ path: d.path, deps: d.deps.map((p) => newPath.get(p) ?? p) }));
  const keep = (l: string, nameAt: (parts: string[]) => string) => !replaced.has(nameAt(l.split(/\s+/)));
  const aliasLines = lines(base['modules.alias']).filter((l) => keep(l, (p) => p[2]));
  const symbolLines = lines(base['modules.symbols']).filter((l) => keep(l, (p) => p[2]));
  const softdepLines = lines(base['modules.softdep']).filter((l) => keep(l, (p) => p[1]));
  const devnameLines = lines(base['modules.devname']).filter((l) => keep(l, (p) => p[0]));
  const idx = new Map([...depLines.map((d) => moduleName(d.path)), ...added.map((m) => m.name)].map((name, i) => [name, i]));
  const depLine = (d: { path: string; deps: string[] }) => `${d.path}:${d.deps.map((p) => ` ${p}`).join('')}`;
  // The kernel's own .bin files, where given and no module of it is replaced, are extended in
  // place (a few new nodes after their end) instead of written again from the text: the same
  // keys and values, in a fraction of the time.
  const extend = baseBins !== undefined && newPath.size === 0;
  const writer = (name: keyof BinIndexes) => (extend ? IndexWriter.extending(baseBins![name], name) : new IndexWriter());
  const depBin = writer('modules.dep.bin');
  const aliasBin = writer('modules.alias.bin');
  const symbolsBin = writer('modules.symbols.bin');
  const insertAlias = (l: string) => {
    const [, alias, name] = l.split(/\s+/);
    const key = aliasKey(alias);
    if (key !== undefined) aliasBin.insert(key, name, idx.get(name) ?? 0);
  };
  const insertSymbol = (l: string) => {
    const [, key, name] = l.split(/\s+/);
    symbolsBin.insert(key, name, idx.get(name) ?? 0);
  };
  if (!extend) {
    for (const d of depLines) depBin.insert(moduleName(d.path), depLine(d), idx.get(moduleName(d.path))!);
    aliasLines.forEach(insertAlias);
    symbolLines.forEach(insertSymbol);
  }
  const owner = new Map(symbolLines.map((l) => l.split(/\s+/)).map((p) => [p[1].replace(/^symbol:/, ''), p[2]]));
  const pathOf = new Map([...depLines.map((d): [string, string] => [moduleName(d.path), d.path]), ...added.map((m): [string, string] => [m.name, m.path])]);
  const depsOf = new Map(depLines.map((d) => [d.path, d.deps]));
  const newLines = { alias: [] as string[], symbols: [] as string[], softdep: [] as string[], devname: [] as string[] };
  for (const m of added) for (const s of m.exports) if (!owner.has(s)) owner.set(s, m.name);
  for (const m of added) {
    for (const s of m.exports) if (owner.get(s) === m.name) newLines.symbols.push(`alias symbol:${s} ${m.name}`);
    for (const a of m.aliases) newLines.alias.push(`alias ${a} ${m.name}`);
    for (const s of m.softdeps) newLines.softdep.push(`softdep ${m.name} ${s}`);
    const devname = m.aliases.find((a) => a.startsWith('devname:'));
    const major = m.aliases.map((a) => /^(char|block)-major-(\d+)-(\d+)$/.exec(a)).find(Boolean);
    if (devname && major) newLines.devname.push(`${m.name} ${devname.slice('devname:'.length)} ${major[1][0]}${major[2]}:${major[3]}`);
  }
  // Each added module's dependencies: the owners of what it needs, and theirs, users before
  // what they use (modprobe loads the list from its end).
  const direct = new Map(added.map((m) => [m.path,
    [...new Set(m.needs.map((s) => owner.get(s)).filter((o): o is string => Boolean(o) && o !== m.name))].map((o) => pathOf.get(o)!)]));
  const depsOfAdded = (path: string, visiting = new Set<string>()): string[] => {
    if (depsOf.has(path)) return depsOf.get(path)!;
    visiting.add(path);
    const closure = new Set<string>();
    for (const d of direct.get(path)!) {
      closure.add(d);
      if (!visiting.has(d)) for (const dd of direct.has(d) ? depsOfAdded(d, visiting) : depsOf.get(d) ?? []) closure.add(dd);
    }
    closure.delete(path);
    const deps = usersFirst([...closure], (p) => (direct.has(p) ? direct.get(p)! : depsOf.get(p) ?? []));
    depsOf.set(path, deps);
    return deps;
  };
  const newDeps = added.map((m) => ({ path: m.path, deps: depsOfAdded(m.path) }));
  for (const d of newDeps) depBin.insert(moduleName(d.path), depLine(d), idx.get(moduleName(d.path))!);
  newLines.alias.forEach(insertAlias);
  newLines.symbols.forEach(insertSymbol);
  const text = (name: keyof TextIndexes, body: string[]) => Buffer.from(headerOf(base[name]) + body.map((l) => `${l}\n`).join(''), 'latin1');
  return {
    'modules.dep': text('modules.dep', [...depLines, ...newDeps].map(depLine)),
    'modules.dep.bin': depBin.toBuffer(),
    'modules.alias': text('modules.alias', [...aliasLines, ...newLines.alias]),
    'modules.alias.bin': aliasBin.toBuffer(),
    'modules.softdep': text('modules.softdep', [...softdepLines, ...newLines.softdep]),
    'modules.symbols': text('modules.symbols', [...symbolLines, ...newLines.symbols]),
    'modules.symbols.bin': symbolsBin.toBuffer(),
    'modules.devname': text('modules.devname', [...devnameLines, ...newLines.devname]),
  };
}

/** The paths ordered so that each comes before every path it depends on; otherwise as given. */
function usersFirst(paths: string[], depsOf: (path: string) => string[]): string[] {
  const set = new Set(paths);
  const users = new Map(paths.map((p) => [p, 0]));
  for (const p of paths) for (const d of depsOf(p)) if (set.has(d)) users.set(d, users.get(d)! + 1);
  const ready = paths.filter((p) => users.get(p) === 0);
  const out: string[] = [];
  while (ready.length) {
    const p = ready.shift()!;
    out.push(p);
    for (const d of depsOf(p)) {
      if (!set.has(d)) continue;
      users.set(d, users.get(d)! - 1);
      if (users.get(d) === 0) ready.push(d);
    }
  }
  return out.length === paths.length ? out : paths; // a cycle: keep the order given
}
