import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseAccel } from '../driver/accel.ts';
import { Machine } from '../driver/machine.ts';
import { trackedPids } from '../driver/processes.ts';
import { kernelOf } from '../driver/scenarios.ts';
import { VSwitch } from '../driver/vswitch.ts';
import { defaultOutPath, defaultSiteDir, projectRoot } from '../lib/paths.ts';
import { debianPackage } from './fixtures.ts';
import { buildCli, leftovers, setUp } from './helpers.ts';

// A replacement kernel package in the site (issue 3, item 1): Debian's PREEMPT_RT flavour of the
// base's own kernel ABI stands in for the kernel a site would bring, as OpenSSI shipped its own.
let work: string;
let baseKver: string;
let rtKver: string;
let rtSite: string;
const rtIso = () => join(work, 'rt.iso');

setUp(async () => {
  assert.ok(existsSync(defaultOutPath), 'build.test.ts makes the ISO first');
  work = await mkdtemp(join(tmpdir(), 'kernel-'));
  const manifest = JSON.parse(await readFile(defaultOutPath.replace(/\.iso$/, '.manifest.json'), 'utf8'));
  baseKver = manifest.kernel.version;
  rtKver = baseKver.replace(/-amd64$/, '-rt-amd64');
  rtSite = join(work, 'rt-site');
  await cp(defaultSiteDir, rtSite, { recursive: true });
  await cp(await debianPackage(`linux-image-${rtKver}`), join(rtSite, 'linux-image-rt.deb'));
  await writeFile(join(rtSite, 'site.json'), JSON.stringify({ kernel: 'linux-image-rt.deb' }));
});

test.after(async () => {
  await rm(work, { recursive: true, force: true });
  assert.equal(trackedPids(), []);
});

async function failingBuild(siteJson: object, files: Record<string, Buffer | string>): Promise<string> {
  const site = await mkdtemp(join(work, 'site-'));
  for (const [name, data] of Object.entries(files)) await writeFile(join(site, name), data);
  await writeFile(join(site, 'site.json'), JSON.stringify(siteJson));
  const out = join(work, 'bad.iso');
  const r = await buildCli(['--site', site, '--out', out]);
  assert.is(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('openssi-live:'));
  assert.is(lines.length, 1, r.stderr);
  assert.not.ok(existsSync(out), 'no ISO written');
  assert.equal(await leftovers(work), []);
  for (const [name, data] of Object.entries(files)) assert.ok((await readFile(join(site, name))).equals(Buffer.from(data)), `${name} untouched`);
  return lines[0];
}

test('a kernel package that is not a .deb, or a .deb without a kernel, is refused naming it', async () => {
  assert.match(await failingBuild({ kernel: 'k.deb' }, { 'k.deb': 'not a package\n' }), /site\.json: kernel: .*k\.deb: not a Debian package/);
  const pkg = join(work, 'pkg');
  await mkdir(join(pkg, 'DEBIAN'), { recursive: true });
  await writeFile(join(pkg, 'DEBIAN', 'control'), 'Package: hello\nVersion: 1\nArchitecture: all\nMaintainer: x <x@y>\nDescription: no kernel\n');
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', pkg, join(work, 'hello.deb')], { stdio: 'ignore' });
  assert.match(await failingBuild({ kernel: 'hello.deb' }, { 'hello.deb': await readFile(join(work, 'hello.deb')) }), /kernel: .*hello\.deb: not a Linux kernel package/);
  assert.match(await failingBuild({ kernel: '../k.deb' }, {}), /site\.json: kernel: must be a \.deb file inside the site folder/);
});

test('a site module built for the base kernel is refused once the site replaces the kernel', async () => {
  // The default CD's own ssi_compat.ko, built for the base kernel.
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', defaultOutPath, '-extract', '/KNOPPIX/KNOPPIX1', join(work, 'layer')], { stdio: 'ignore' });
  const ko = execFileSync('unsquashfs', ['-cat', join(work, 'layer'), `usr/lib/modules/${baseKver}/extra/ssi_compat.ko`], { maxBuffer: 64 << 20 });
  const site = join(work, 'rt-plus-module');
  await cp(rtSite, site, { recursive: true });
  await writeFile(join(site, 'old_ssi.ko'), ko);
  await writeFile(join(site, 'site.json'), JSON.stringify({ kernel: 'linux-image-rt.deb', modules: ['old_ssi.ko'] }));
  const r = await buildCli(['--site', site, '--out', join(work, 'x.iso')]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`old_ssi\\.ko: built for kernel '${baseKver} SMP [^']*', but the CD's kernel ${rtKver} is '${rtKver} SMP preempt_rt `));
  assert.not.ok(existsSync(join(work, 'x.iso')));
});

test('with the package, the CD boots its kernel: linux, modules tree and minirt swapped together', async () => {
  const r = await buildCli(['--site', rtSite, '--out', rtIso(), '--json']);
  assert.is(r.code, 0, r.stderr);
  const manifest = JSON.parse(await readFile(join(work, 'rt.manifest.json'), 'utf8'));
  assert.equal(manifest.kernel, { version: rtKver, from: 'site package linux-image-rt.deb' });
  const net = await VSwitch.start(work);
  const vm = Machine.start({
    name: 'node1-rt-kernel', firmware: 'bios', accel: await chooseAccel('auto', await kernelOf(rtIso(), work)),
    dir: join(projectRoot, 'out', 'boot'), iso: rtIso(),
    nics: [{ mac: '52:54:00:00:01:01', model: 'e1000', slot: 3, vde: net.socket }],
  });
  try {
    await vm.waitForShell(240);
    assert.is((await vm.succeed('uname -r')).trim(), rtKver);
    assert.match(await vm.succeed('uname -v'), /PREEMPT_RT/);
    // minirt's drivers came from the package: the CD was found and mounted with them.
    assert.match(await vm.succeed('cat /proc/mounts'), /^overlay \/ overlay .*lowerdir=\/KNOPPIX2:\/KNOPPIX1:\/KNOPPIX/m);
    assert.is((await vm.succeed('ls /lib/modules')).trim(), rtKver, "only the package's modules tree is visible");
    assert.match(await vm.succeed('lsmod'), /^ssi_compat\s/m);
    assert.match(await vm.succeed('modinfo -F vermagic ssi_compat'), new RegExp(`^${rtKver} SMP preempt_rt `));
    assert.match(await vm.succeed('cat /proc/cluster/loadlevellist'), /^\/demo-proclb\//m);
    assert.match(await vm.succeed('ip -o -4 addr show'), /inet 10\.0\.0\.1\/8 /);
    assert.is((await vm.succeed('cluster')).trim(), '1');
  } finally {
    await vm.stop();
    await net.stop();
  }
});

test.run();
