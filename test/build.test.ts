import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileDigest, walk } from '../lib/hash.ts';
import { defaultOutPath, defaultSiteDir, projectRoot } from '../lib/paths.ts';
import { hostFile } from '../lib/host.ts';
import { elToritoEntries } from '../iso/xorriso.ts';
import { isoFiles } from '../iso/layout.ts';
import { initrdMembers } from '../iso/initrd.ts';
import { buildCli, leftovers, scratch } from './helpers.ts';

const manifestOf = (iso: string) => iso.replace(/\.iso$/, '.manifest.json');

/** Reads one file out of an ISO, or out of a squashfs layer inside it. */
function isoCat(iso: string, path: string, dir: string): Buffer {
  const dest = join(dir, `x-${Date.now()}`);
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', `/${path}`, dest], { stdio: 'ignore' });
  return readFileSync(dest);
}
function layerCat(iso: string, layer: string, path: string, dir: string): string {
  const image = join(dir, `layer-${Date.now()}`);
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', iso, '-extract', `/KNOPPIX/${layer}`, image], { stdio: 'ignore' });
  return execFileSync('unsquashfs', ['-cat', image, path], { encoding: 'utf8' });
}

test('npm run build makes the default ISO, its manifest, in KNOPPIX layout', async () => {
  const r = await buildCli(['--json']);
  assert.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.is(summary.iso, defaultOutPath);
  assert.match(r.stderr, /\[1\/9\] base/);
  const files = await isoFiles(defaultOutPath);
  for (const f of ['boot/isolinux/isolinux.bin', 'boot/isolinux/isolinux.cfg', 'boot/isolinux/linux', 'boot/isolinux/minirt.gz',
    'boot/grub/grub.cfg', 'KNOPPIX/KNOPPIX', 'KNOPPIX/KNOPPIX1', 'KNOPPIX/KNOPPIX2', 'KNOPPIX/md5sums']) {
    assert.ok(files.includes(f), `${f} on the ISO`);
  }
  assert.is(await fileDigest(defaultOutPath), summary.sha256);
  const manifest = JSON.parse(await readFile(manifestOf(defaultOutPath), 'utf8'));
  assert.is(manifest.iso.sha256, summary.sha256);
  assert.match(manifest.base.kernelVersion, /^\d+\.\d+\.\d+-\d+-amd64$/, 'the generic amd64 flavour');
  assert.ok(manifest.base.packages.some((p: string) => p.startsWith('linux-image-') && !p.includes('cloud')));
  assert.equal(Object.keys(manifest.stages), ['base', 'unpack', 'minirt', 'kbuild', 'modules', 'packages', 'inject', 'site', 'pack']);
  const injected = manifest.layers[0].files;
  const inittab = injected.find((f: any) => f.path === 'etc/inittab');
  assert.is(inittab.change, 'changed');
  assert.match(inittab.sha256, /^[0-9a-f]{64}$/);
  assert.is(injected.find((f: any) => f.path === 'usr/lib/openssi/first-nic').change, 'added');
  // Nothing of the build host's folders in the base (mmdebstrap once left the cache's path in it).
  const base = join(await scratch('base-listing'), 'KNOPPIX');
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', defaultOutPath, '-extract', '/KNOPPIX/KNOPPIX', base], { stdio: 'ignore' });
  const listing = execFileSync('unsquashfs', ['-l', '-d', '', base], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.not.ok(listing.split('\n').some((l) => l.startsWith(projectRoot)), `the checkout's path ${projectRoot} in the base's root`);
  assert.not.match(listing, /openssi-live-minirt\.deb|openssi-live-standin/);
});

test('the ISO has a BIOS and a UEFI El Torito entry, an MBR and a GPT EFI partition', async () => {
  const entries = await elToritoEntries(defaultOutPath);
  assert.equal(entries.map((e) => e.platform), ['BIOS', 'UEFI']);
  const report = execFileSync('xorriso', ['-indev', defaultOutPath, '-report_system_area', 'plain'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(report, /System area summary: MBR isohybrid .*GPT/);
  assert.match(report, /^MBR partition\s+:\s+1\s+0x00\s+0xee/m, 'protective MBR: the GPT describes the disk');
  // EFI System Partition type C12A7328-F81F-11D2-BA4B-00A0C93EC93B, as GPT stores it on disk
  assert.match(report, /^GPT type GUID\s+:\s+2\s+28732ac11ff8d211ba4b00a0c93ec93b$/m);
});

test('KNOPPIX/md5sums holds the checksum of every file on the CD', async () => {
  const dir = await scratch('md5-');
  const sums = isoCat(defaultOutPath, 'KNOPPIX/md5sums', dir).toString();
  const lines = sums.trim().split('\n');
  const byPath = new Map(lines.map((l) => [l.slice(34), l.slice(0, 32)]));
  assert.ok(byPath.has('KNOPPIX/KNOPPIX') && byPath.has('boot/isolinux/minirt.gz'));
  const cfg = isoCat(defaultOutPath, 'boot/isolinux/isolinux.cfg', dir);
  assert.is(byPath.get('boot/isolinux/isolinux.cfg'), execFileSync('md5sum', ['-'], { input: cfg, encoding: 'utf8' }).slice(0, 32));
});

test('the cluster key is in the ISO tree for node 1, in no layer that node 1 serves', async () => {
  const dir = await scratch('key-');
  const key = isoCat(defaultOutPath, 'openssi/cluster-key', dir);
  assert.is(key.subarray(0, 15).toString('latin1'), '\0\0\0\x0bssh-ed25519', 'a dropbear Ed25519 key');
  const seed = key.subarray(19, 51); // after the key type and the seed's length
  for (const layer of ['KNOPPIX1', 'KNOPPIX2']) {
    const image = join(dir, layer);
    execFileSync('xorriso', ['-osirrox', 'on', '-indev', defaultOutPath, '-extract', `/KNOPPIX/${layer}`, image], { stdio: 'ignore' });
    execFileSync('unsquashfs', ['-q', '-n', '-d', join(dir, `${layer}.d`), image], { stdio: 'ignore' });
    const holding = (await walk(join(dir, `${layer}.d`))).filter((e) => e.type === 'file' && readFileSync(join(dir, `${layer}.d`, e.path)).includes(seed));
    assert.equal(holding.map((e) => e.path), [], `${layer}: no file holds the key`);
  }
  // The public half is in the site layer: every node accepts the key.
  assert.match(layerCat(defaultOutPath, 'KNOPPIX2', 'root/.ssh/authorized_keys', dir), /^no-port-forwarding\S* ssh-ed25519 /);
});

test('a site file change rebuilds only the site layer and the ISO, and lands in the ISO', async () => {
  const dir = await scratch('site-change-');
  const site = join(dir, 'site');
  await cp(defaultSiteDir, site, { recursive: true });
  const out = join(dir, 'site.iso');
  const first = await buildCli(['--site', site, '--out', out, '--json']);
  assert.is(first.code, 0, first.stderr);
  await mkdir(join(site, 'files', 'etc', 'openssi-site'), { recursive: true });
  await writeFile(join(site, 'files', 'etc', 'openssi-site', 'note'), `changed ${Date.now()}\n`);
  const second = await buildCli(['--site', site, '--out', out, '--json']);
  assert.is(second.code, 0, second.stderr);
  const stages = JSON.parse(second.stdout).stages;
  for (const s of ['base', 'unpack', 'minirt', 'modules', 'inject']) assert.ok(stages[s].cached, `${s} reused`);
  for (const s of ['site', 'pack']) assert.not.ok(stages[s].cached, `${s} rebuilt`);
  assert.match(layerCat(out, 'KNOPPIX2', 'etc/openssi-site/note', dir), /^changed \d+/);
  assert.is(JSON.parse(second.stdout).sha256 === JSON.parse(first.stdout).sha256, false);
});

test('site settings reach the boot menus and the image', async () => {
  const dir = await scratch('site-cfg-');
  const site = join(dir, 'site');
  await cp(defaultSiteDir, site, { recursive: true });
  await writeFile(join(site, 'site.json'), JSON.stringify({
    clustername: 'lab', initNodeName: 'alpha', boot: { label: 'Lab cluster', timeout: 7, kernelArgs: ['mitigations=off'] },
    iso: { volumeLabel: 'LAB_CLUSTER' }, cdsl: ['/etc/lab/', '/var/lib/lab.state'], initrdModules: ['virtio_net', 'ssi_compat'], ntp: true,
    cvip: { cvips: [{ ip: '10.0.0.100', gateway: '10.0.0.1', directors: [{ node: 1, garpInterface: 'eth0' }] }] },
  }));
  const out = join(dir, 'lab.iso');
  const r = await buildCli(['--site', site, '--out', out]);
  assert.is(r.code, 0, r.stderr);
  const isolinux = isoCat(out, 'boot/isolinux/isolinux.cfg', dir).toString();
  assert.match(isolinux, /^TIMEOUT 70$/m);
  assert.match(isolinux, /MENU LABEL Lab cluster/);
  assert.match(isolinux, /APPEND initrd=minirt\.gz console=tty0 console=ttyS0,115200n8 mitigations=off$/m);
  const grub = isoCat(out, 'boot/grub/grub.cfg', dir).toString();
  assert.match(grub, /set timeout=7/);
  assert.match(grub, /linux \/boot\/isolinux\/linux console=tty0 console=ttyS0,115200n8 mitigations=off/);
  const conf = layerCat(out, 'KNOPPIX2', 'etc/openssi/cluster.conf', dir);
  assert.match(conf, /^CLUSTERNAME=lab$/m, 'plain words need no quotes');
  assert.match(conf, /^INIT_NODE_NAME=alpha$/m);
  assert.match(conf, /^NTP=on$/m);
  assert.is(layerCat(out, 'KNOPPIX2', 'etc/openssi/cdsl.site', dir), '/etc/lab/\n/var/lib/lab.state\n');
  // The CVIPs in OpenSSI's XML, as the image's own reader takes them.
  const cvip = layerCat(out, 'KNOPPIX2', 'cluster/etc/cvip.conf', dir);
  assert.match(cvip.replace(/\s+/g, ''), /<cvips><routing>DR<\/routing><cvip><ip_addr>10\.0\.0\.100<\/ip_addr><gateway>10\.0\.0\.1<\/gateway><director_node><node_num>1<\/node_num><garp_interface>eth0<\/garp_interface><\/director_node><\/cvip><\/cvips>/);
  const image = join(dir, 'site-layer');
  execFileSync('xorriso', ['-osirrox', 'on', '-indev', out, '-extract', '/KNOPPIX/KNOPPIX2', image], { stdio: 'ignore' });
  const listing = execFileSync('unsquashfs', ['-lls', '-d', '', image], { encoding: 'utf8' });
  assert.match(listing, /\/etc\/lab -> \/cluster\/node\{nodenum\}\/etc\/lab$/m);
  assert.match(listing, /\/var\/lib\/lab\.state -> \/cluster\/node\{nodenum\}\/var\/lib\/lab\.state$/m);
  // Node 1's folders for them are on the CD: a CDSL resolves before any boot script has run.
  assert.match(listing, /^d\S+ \S+ +\d+ [\d-]+ [\d:]+ \/cluster\/node1\/etc\/lab$/m, listing.split('\n').filter((l) => l.includes('/cluster')).join('\n'));
  assert.match(listing, /^d\S+ \S+ +\d+ [\d-]+ [\d:]+ \/cluster\/node1\/var\/lib$/m);
  const pvd = execFileSync('xorriso', ['-indev', out, '-pvd_info'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(pvd, /Volume Id\s*:\s*LAB_CLUSTER/);
  // initrdModules: appended to minirt, dependencies first; minirt's own bytes and init kept.
  const [plain, early] = [isoCat(defaultOutPath, 'boot/isolinux/minirt.gz', dir), isoCat(out, 'boot/isolinux/minirt.gz', dir)];
  assert.ok(early.subarray(0, plain.length).equals(plain), "minirt's own bytes in front");
  const members = await initrdMembers(early);
  const order = members.get('openssi/modules/order')!.data.toString().trim().split('\n');
  const at = (ko: string) => order.indexOf(ko);
  assert.ok(at('failover.ko') >= 0 && at('failover.ko') < at('net_failover.ko') && at('net_failover.ko') < at('virtio_net.ko'), `dependencies first: ${order}`);
  assert.is(order[order.length - 1], 'ssi_compat.ko', `in the site's order after that: ${order}`);
  assert.ok(members.get('openssi/init.base')!.data.equals((await initrdMembers(plain)).get('init')!.data), "minirt's init kept");
});

/** Each bad input: exit 1, one line naming the thing, no ISO or temporary left, input untouched. */
async function rejected(args: string[], pattern: RegExp, out: string, env: Record<string, string> = {}) {
  const r = await buildCli([...args, '--out', out], env);
  assert.is(r.code, 1, `exit code for ${args.join(' ')}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('openssi-live:'));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
  assert.not.ok(existsSync(out), 'no ISO written');
  assert.equal(await leftovers(join(out, '..')), [], 'no temporary left');
}

test('bad input: one clear line, non-zero exit, nothing written, input untouched', async () => {
  const dir = await scratch('bad-');
  const out = join(dir, 'out.iso');
  await rejected(['--base', join(dir, 'nope.iso')], /--base .*nope\.iso: no such file/, out);
  await rejected(['--base', dir], /--base .*: not a file/, out);
  const text = join(dir, 'notes.iso');
  await writeFile(text, 'not an ISO\n'.repeat(5000));
  const textSum = await fileDigest(text);
  await rejected(['--base', text], /notes\.iso: not an ISO 9660 image/, out);
  assert.is(await fileDigest(text), textSum, 'input untouched');
  const tree = join(dir, 'tree');
  await mkdir(join(tree, 'isolinux'), { recursive: true });
  await writeFile(join(tree, 'readme.txt'), 'hello');
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', join(dir, 'plain.iso'), tree], { stdio: 'ignore' });
  await rejected(['--base', join(dir, 'plain.iso')], /plain\.iso: the ISO has no El Torito boot record/, out);
  execFileSync('cp', [hostFile('isolinuxBin'), join(tree, 'isolinux/')]);
  execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', join(dir, 'other.iso'), '-b', 'isolinux/isolinux.bin', '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table', tree], { stdio: 'ignore' });
  const otherSum = await fileDigest(join(dir, 'other.iso'));
  await rejected(['--base', join(dir, 'other.iso')], /other\.iso: unknown layout: neither KNOPPIX\/KNOPPIX nor live\/\*\.squashfs \(top level: isolinux, readme\.txt\)/, out);
  assert.is(await fileDigest(join(dir, 'other.iso')), otherSum, 'input untouched');
  await rejected([], /--out .*: folder .*missing does not exist/, join(dir, 'missing', 'x.iso')).catch((e) => {
    if (!/scandir/.test(e.message)) throw e; // the folder is missing, so nothing can be left in it
  });
  await rejected(['--site', join(dir, 'nosite')], /--site .*nosite: no such folder/, out);
  await mkdir(join(dir, 'notasite', 'etc'), { recursive: true });
  await rejected(['--site', join(dir, 'notasite')], /--site .*notasite: not a site folder \(it has none of site\.json, files, iso, templates\)/, out);
  const badSite = join(dir, 'badsite');
  await mkdir(badSite);
  await writeFile(join(badSite, 'site.json'), JSON.stringify({ interconnect: { initNodeIp: '10.0.0.300' } }));
  await rejected(['--site', badSite], /badsite\/site\.json: interconnect\.initNodeIp: must be an IPv4 address, got "10\.0\.0\.300"/, out);
  await writeFile(join(badSite, 'site.json'), JSON.stringify({ initrdModules: ['no_such_module'] }));
  await rejected(['--site', badSite], /site\.json: initrdModules: no_such_module: kernel \S+ has no such module/, out);
  // The CVIPs are checked as every node checks /etc/cvip.conf (cvip-config), against the CD's
  // clustertab: node 1 alone here.
  await writeFile(join(badSite, 'site.json'), JSON.stringify({ cvip: { cvips: [{ ip: '10.0.0.100', directors: [{ node: 1 }, { node: 2 }] }] } }));
  await rejected(['--site', badSite], /site\.json: cvip: director node 2 of CVIP 10\.0\.0\.100 is not in clustertab$/, out);
  await writeFile(join(badSite, 'site.json'), JSON.stringify({ cvip: { cvips: [{ ip: '10.0.0.1', directors: [{ node: 1 }] }] } }));
  await rejected(['--site', badSite], /site\.json: cvip: CVIP 10\.0\.0\.1 is node 1's own address$/, out);
  await writeFile(join(badSite, 'site.json'), JSON.stringify({ cvip: { routing: 'NAT', cvips: [{ ip: '192.168.1.10', directors: [{ node: 1, garpInterface: 'eth1' }] }] } }));
  await rejected(['--site', badSite], /site\.json: cvip: CVIP 192\.168\.1\.10 is not a host address of the interconnect 10\.0\.0\.0\/8, which NAT routing needs \(a public CVIP: DR\)$/, out);
  await rejected(['--bogus'], /Unknown option '--bogus'/, out);
  await rejected([], /missing host tools: .*mmdebstrap \(Debian package mmdebstrap\)/, out, { PATH: '/nonexistent' });
});

test('Ctrl-C during a build stops it and leaves the cache usable', async () => {
  const dir = await scratch('sigint-');
  const cache = join(dir, 'cache');
  const out = join(dir, 'x.iso');
  let pid = 0;
  const running = buildCli(['--cache', cache, '--out', out], {}, projectRoot, (p) => (pid = p));
  // Wait until the base stage is under way (its temporary folder exists), then interrupt.
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const base = join(cache, 'stages', 'base');
    if (existsSync(base) && (await readdir(base)).some((n) => n.startsWith('.tmp-'))) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  await new Promise((r) => setTimeout(r, 3000));
  process.kill(pid, 'SIGINT');
  const r = await running;
  assert.is(r.code, 130, r.stderr);
  assert.match(r.stderr, /openssi-live: interrupted/);
  assert.not.ok(existsSync(out));
  assert.equal(await readdir(join(cache, 'stages', 'base')), [], 'no half-made stage and no temporary');
  const mounts = await readFile('/proc/mounts', 'utf8');
  assert.not.ok(mounts.includes(cache), 'nothing left mounted under the cache');
});

test.run();
