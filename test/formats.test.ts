import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { entriesFromTree, listNewc, newcArchive, writeCpioGz } from '../iso/cpio.ts';
import { appendToInitrd, compress, compressionOf, decompress, initrdMembers, initrdParts } from '../iso/initrd.ts';
import { isStaticElf } from '../iso/elf.ts';
import { moduleClosure, moduleName, readModuleIndex } from '../iso/modules.ts';
import { makeSquashfs, squashfsCompressor, listSquashfs } from '../iso/squashfs.ts';
import { isIso9660 } from '../iso/xorriso.ts';
import { isoExtents, listedChecksums, menuInitrds } from '../iso/layout.ts';
import { captureHashed } from '../lib/fifo.ts';
import { run } from '../lib/exec.ts';
import { fileDigest } from '../lib/hash.ts';
import { hostFile } from '../lib/host.ts';
import { scratch } from './helpers.ts';

async function sampleTree() {
  const dir = await scratch('fmt-');
  await mkdir(join(dir, 'bin'), { recursive: true });
  await writeFile(join(dir, 'bin', 'hello'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await writeFile(join(dir, 'odd'), 'x'); // 1 byte: exercises the 4-byte padding
  await symlink('hello', join(dir, 'bin', 'sh'));
  return dir;
}

test('cpio: newc archive round-trips names, modes and data, and is deterministic', async () => {
  const dir = await sampleTree();
  const entries = await entriesFromTree(dir);
  await writeCpioGz(entries, join(dir, 'a.gz'), 1700000000);
  await writeCpioGz(entries, join(dir, 'b.gz'), 1700000000);
  const a = await readFile(join(dir, 'a.gz'));
  assert.ok(a.equals(await readFile(join(dir, 'b.gz'))), 'same entries, same bytes');
  const members = listNewc(gunzipSync(a));
  assert.equal(members.map((m) => m.path), ['bin', 'bin/hello', 'bin/sh', 'odd']);
  assert.is(members[1].mode, 0o100755);
  assert.is(members[1].data.toString(), '#!/bin/sh\necho hi\n');
  assert.is(members[2].mode & 0o170000, 0o120000);
  assert.is(members[2].data.toString(), 'hello');
  assert.is(members[3].data.toString(), 'x');
});

test('cpio: GNU cpio reads our archive', async () => {
  const dir = await sampleTree();
  await writeCpioGz(await entriesFromTree(dir), join(dir, 'a.gz'), 1700000000);
  const archive = execFileSync('gzip', ['-dc', join(dir, 'a.gz')]);
  const listing = execFileSync('cpio', ['-it', '--quiet'], { input: archive, encoding: 'utf8' });
  assert.equal(listing.trim().split('\n'), ['bin', 'bin/hello', 'bin/sh', 'odd']);
});

test('modules: closure follows modules.dep, skips built-ins, reports the unknown', async () => {
  const dir = await scratch('mods-');
  await writeFile(join(dir, 'modules.dep'), [
    'kernel/drivers/ata/ahci.ko: kernel/drivers/ata/libahci.ko kernel/drivers/ata/libata.ko',
    'kernel/drivers/ata/libahci.ko: kernel/drivers/ata/libata.ko',
    'kernel/drivers/ata/libata.ko:',
    'kernel/fs/isofs/isofs.ko.xz:',
    '',
  ].join('\n'));
  await writeFile(join(dir, 'modules.builtin'), 'kernel/drivers/virtio/virtio_pci.ko\n');
  const index = await readModuleIndex(dir);
  const { files, missing } = moduleClosure(index, ['ahci', 'virtio-pci', 'isofs', 'nosuch']);
  assert.equal(files, ['kernel/drivers/ata/ahci.ko', 'kernel/drivers/ata/libahci.ko', 'kernel/drivers/ata/libata.ko', 'kernel/fs/isofs/isofs.ko.xz']);
  assert.equal(missing, ['nosuch']);
  assert.is(moduleName('a/b/usb-storage.ko.zst'), 'usb_storage');
});

test('elf: a static busybox is static, node is not', () => {
  assert.ok(isStaticElf(hostFile('busyboxStatic')), 'busybox-static on the host');
  assert.not.ok(isStaticElf(process.execPath));
  assert.not.ok(isStaticElf('/etc/hostname'));
});

test('squashfs: reproducible image, compressor read from the superblock', async () => {
  const dir = await sampleTree();
  await makeSquashfs(join(dir, 'bin'), join(dir, 'a.sq'), { epoch: 1700000000, allRoot: true });
  await new Promise((r) => setTimeout(r, 1100));
  await makeSquashfs(join(dir, 'bin'), join(dir, 'b.sq'), { epoch: 1700000000, allRoot: true });
  assert.ok((await readFile(join(dir, 'a.sq'))).equals(await readFile(join(dir, 'b.sq'))));
  assert.is(await squashfsCompressor(join(dir, 'a.sq')), 'zstd');
  assert.is(await squashfsCompressor(join(dir, 'odd')), undefined);
  assert.equal(await listSquashfs(join(dir, 'a.sq')), ['hello', 'sh']);
  assert.not.ok(await isIso9660(join(dir, 'a.sq')));
});


test('fifo: a stream captured to a file with its sha256; a failing producer leaves no file and no wait', async () => {
  const dir = await scratch('fifo-');
  const out = join(dir, 'out.bin');
  // 5 MiB + 1 byte: several ring slots and a short last chunk.
  const sha = await captureHashed(out, (fifo) => run('sh', ['-c', 'head -c 5242881 /dev/urandom > "$1"', 'sh', fifo]));
  assert.is((await stat(out)).size, 5 * 2 ** 20 + 1);
  assert.is(sha, await fileDigest(out));
  // Fails before opening the FIFO: the reader must not wait in open() for ever.
  await captureHashed(out, () => run('false', [])).then(() => assert.unreachable('no error'), () => {});
  assert.not.ok(existsSync(out), 'no partial output');
  // Fails after writing part of the stream.
  await captureHashed(out, (fifo) => run('sh', ['-c', 'head -c 3000000 /dev/zero > "$1"; exit 3', 'sh', fifo])).then(() => assert.unreachable('no error'), () => {});
  assert.not.ok(existsSync(out), 'no partial output');
  assert.equal((await readdir(dir)).length, 0, 'the FIFO folder is gone');
});

test('initrd: an archive appended after the early-microcode cpio and the main part, compressed like it', async () => {
  const dir = await scratch('initrd-');
  await mkdir(join(dir, 'ucode', 'kernel', 'x86', 'microcode'), { recursive: true });
  await writeFile(join(dir, 'ucode', 'kernel', 'x86', 'microcode', 'AuthenticAMD.bin'), 'microcode');
  await mkdir(join(dir, 'main', 'bin'), { recursive: true });
  await writeFile(join(dir, 'main', 'init'), '#!/bin/sh\necho base\n', { mode: 0o755 });
  await writeFile(join(dir, 'main', 'bin', 'x'), 'x');
  await mkdir(join(dir, 'ours'));
  await writeFile(join(dir, 'ours', 'init'), '#!/bin/sh\necho ours\n', { mode: 0o755 });
  const ucode = await newcArchive(await entriesFromTree(join(dir, 'ucode')), 1);
  for (const compression of ['gzip', 'xz', 'zstd', 'lz4', 'lzma', 'bzip2']) {
    const base = Buffer.concat([ucode, await compress(await newcArchive(await entriesFromTree(join(dir, 'main')), 1), compression)]);
    const out = await appendToInitrd(base, await newcArchive(await entriesFromTree(join(dir, 'ours')), 1));
    assert.ok(out.subarray(0, base.length).equals(base), `${compression}: the initrd's own bytes kept`);
    assert.is(compressionOf(out.subarray(base.length)), compression, `${compression}: ours compressed like the main part`);
    if (compression === 'xz') assert.is(out[base.length + 7], 0x01, 'xz with CRC32, the one check the kernel knows');
    // The kernel reads each compressed stream on its own; lzma's tool cannot read two in a row,
    // so there the two are read apart.
    const members = compression === 'lzma'
      ? new Map([...(await initrdMembers(base)), ...listNewc(await decompress(out.subarray(base.length), 'lzma')).map((m) => [m.path, m] as const)])
      : await initrdMembers(out);
    assert.is(members.get('init')!.data.toString(), '#!/bin/sh\necho ours\n', `${compression}: ours unpacked last`);
    assert.is(members.get('bin/x')!.data.toString(), 'x');
    assert.is(members.get('kernel/x86/microcode/AuthenticAMD.bin')!.data.toString(), 'microcode');
    assert.is(initrdParts(out)[0].files!.join(' '), 'kernel kernel/x86 kernel/x86/microcode kernel/x86/microcode/AuthenticAMD.bin');
  }
  // No compressed part: ours goes uncompressed, 4-byte aligned.
  const plain = await appendToInitrd(Buffer.concat([ucode, Buffer.from([0, 0])]), await newcArchive(await entriesFromTree(join(dir, 'ours')), 1));
  assert.is((await initrdMembers(plain)).get('init')!.data.toString(), '#!/bin/sh\necho ours\n');
});

test('menus: the initrds of every boot entry, isolinux and GRUB, comments skipped', () => {
  const isolinux = 'LABEL a\n  KERNEL linux\n  APPEND initrd=minirt.gz,/boot/ucode.img quiet\nLABEL b\n  INITRD /live/initrd.img\n';
  assert.equal(menuInitrds(isolinux, 'boot/isolinux/isolinux.cfg'), [['boot/isolinux/minirt.gz', 'boot/ucode.img'], ['live/initrd.img']]);
  const grub = 'menuentry "x" {\n\tlinux /live/vmlinuz\n\tinitrd\t/live/ucode.img /live/initrd.img-6\n}\n# initrd /live/old.img\n';
  assert.equal(menuInitrds(grub, 'boot/grub/grub.cfg'), [['live/ucode.img', 'live/initrd.img-6']]);
});

test("checksum lists: a live CD's own md5 and sha256 lists, md5 first, any path spelling", async () => {
  const cd = await scratch('sums-');
  await mkdir(join(cd, 'KNOPPIX'));
  await mkdir(join(cd, 'live'));
  const md5 = (c: string) => createHash('md5').update(c).digest('hex');
  const sha = (c: string) => createHash('sha256').update(c).digest('hex');
  await writeFile(join(cd, 'live', 'a.squashfs'), 'a');
  await writeFile(join(cd, 'live', 'b.squashfs'), 'b');
  // md5sum.txt names a.squashfs, sha256sum.txt both (live-build writes ./ paths; * is binary mode).
  await writeFile(join(cd, 'md5sum.txt'), `${md5('a')}  ./live/a.squashfs\nnot a checksum line\n`);
  await writeFile(join(cd, 'sha256sum.txt'), `${sha('a')}  ./live/a.squashfs\n${sha('b')} *live/b.squashfs\n`);
  await writeFile(join(cd, 'KNOPPIX', 'md5sums'), `${md5('k')}  KNOPPIX/KNOPPIX\n`);
  const iso = join(cd, '..', `${cd.split('/').pop()}.iso`);
  await run('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-o', iso, cd]);
  const sums = await listedChecksums(iso, await isoExtents(iso, ''));
  assert.is(sums.get('live/a.squashfs'), md5('a'), 'md5 before sha256');
  assert.is(sums.get('live/b.squashfs'), sha('b'), 'sha256 where no md5 is listed');
  assert.is(sums.get('KNOPPIX/KNOPPIX'), md5('k'));
  assert.is(sums.size, 3);
});

test.run();
