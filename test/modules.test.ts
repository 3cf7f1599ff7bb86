import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { modinfo } from '../iso/modules.ts';
import { checkVermagic } from '../stages/05-modules.ts';
import { defaultOutPath, defaultSiteDir } from '../lib/paths.ts';
import { buildCli, leftovers, scratch, setUp } from './helpers.ts';

let dir: string;
let ko: Buffer;
let other: Buffer;
let vermagic: string;

/** The same module with its vermagic naming another kernel ABI (6.1.0-56 → 6.1.0-99). */
function forAnotherKernel(module: Buffer): Buffer {
  const text = module.toString('latin1');
  const m = /vermagic=(\d+\.\d+\.\d+-)(\d+)(-)/.exec(text)!;
  const abi = m[2].replace(/./g, m[2].startsWith('9') ? '1' : '9');
  return Buffer.from(text.slice(0, m.index) + `vermagic=${m[1]}${abi}${m[3]}` + text.slice(m.index + m[0].length), 'latin1');
}

setUp(async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the ISO first');
  dir = await scratch('modules-');
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', defaultOutPath, '-extract', '/KNOPPIX/KNOPPIX1', join(dir, 'layer')], { stdio: 'ignore' });
  const path = execFileSync('unsquashfs', ['-lc', '-d', '', join(dir, 'layer')], { encoding: 'utf8' }).split('\n').find((l) => l.endsWith('/extra/ssi_compat.ko'))!;
  ko = execFileSync('unsquashfs', ['-cat', join(dir, 'layer'), path.slice(1)], { maxBuffer: 64 << 20 });
  vermagic = modinfo(ko).get('vermagic')!;
  other = forAnotherKernel(ko);
});

test('the CD carries ssi_compat built for its kernel', () => {
  assert.match(vermagic, /^\d+\.\d+\.\d+-\d+-amd64 SMP /);
  assert.is(modinfo(ko).get('name'), 'ssi_compat');
  assert.is(modinfo(ko).get('license'), 'GPL');
});

test('vermagic check: the matching module passes, one built for another kernel is refused naming both', () => {
  const kver = vermagic.split(' ')[0];
  checkVermagic('ssi_compat.ko', ko, vermagic, kver);
  try {
    checkVermagic('other.ko', other, vermagic, kver);
    assert.unreachable('accepted a module for another kernel');
  } catch (error: any) {
    assert.is(error.name, 'UserError');
    assert.match(error.message, /^other\.ko: built for kernel '6\.1\.0-\d+-amd64 SMP [^']*', but the CD's kernel 6\.1\.0-\d+-amd64 is '6\.1\.0-\d+-amd64 SMP/);
    assert.ok(error.message.includes(modinfo(other).get('vermagic')!.trim()) && error.message.includes(vermagic.trim()));
  }
  assert.throws(() => checkVermagic('x.ko', Buffer.from('not elf'), vermagic, kver), /x\.ko: not a kernel module/);
});

test('a site module built for another kernel stops the build, with no ISO written', async () => {
  const site = join(dir, 'site');
  await cp(defaultSiteDir, site, { recursive: true });
  await mkdir(join(site, 'modules'));
  await writeFile(join(site, 'modules', 'vendor_nic.ko'), other);
  await writeFile(join(site, 'site.json'), JSON.stringify({ modules: ['modules/vendor_nic.ko'] }));
  const out = join(dir, 'out.iso');
  const r = await buildCli(['--site', site, '--out', out]);
  assert.is(r.code, 1, r.stderr);
  const line = r.stderr.trim().split('\n').filter((l) => l.startsWith('openssi-live:'));
  assert.is(line.length, 1);
  assert.match(line[0], /vendor_nic\.ko: built for kernel '6\.1\.0-\d+-amd64 .*', but the CD's kernel 6\.1\.0-\d+-amd64 is/);
  assert.not.ok(existsSync(out));
  assert.equal(await leftovers(dir), []);
  assert.ok((await readFile(join(site, 'modules', 'vendor_nic.ko'))).equals(other), 'input untouched');
});

test('a site naming a module that does not exist is refused with the field', async () => {
  const site = join(dir, 'site2');
  await cp(defaultSiteDir, site, { recursive: true });
  await writeFile(join(site, 'site.json'), JSON.stringify({ modules: ['nope.ko'] }));
  const r = await buildCli(['--site', site, '--out', join(dir, 'x.iso')]);
  assert.is(r.code, 1);
  assert.match(r.stderr, /site2\/site\.json: modules: nope\.ko: no such file or folder/);
});

test.run();
