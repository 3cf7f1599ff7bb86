import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { entriesFromTree, listNewc, writeCpioGz } from '../iso/cpio.ts';
import { isStaticElf } from '../iso/elf.ts';
import { moduleClosure, moduleName, readModuleIndex } from '../iso/modules.ts';
import { makeSquashfs, squashfsCompressor, listSquashfs } from '../iso/squashfs.ts';
import { isIso9660 } from '../iso/xorriso.ts';
import { captureHashed } from '../lib/fifo.ts';
import { run } from '../lib/exec.ts';
import { fileDigest } from '../lib/hash.ts';

async function sampleTree() {
  const dir = await mkdtemp(join(tmpdir(), 'fmt-'));
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
  const listing = execFileSync('sh', ['-c', `gzip -dc "$1" | cpio -it --quiet`, 'sh', join(dir, 'a.gz')], { encoding: 'utf8' });
  assert.equal(listing.trim().split('\n'), ['bin', 'bin/hello', 'bin/sh', 'odd']);
});

test('modules: closure follows modules.dep, skips built-ins, reports the unknown', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mods-'));
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
  assert.ok(isStaticElf('/bin/busybox'), 'busybox-static on the host');
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
  const dir = await mkdtemp(join(tmpdir(), 'fifo-'));
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

test.run();
