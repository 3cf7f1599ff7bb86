import { createHash } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { run } from './exec.ts';

const chunkBytes = 1 << 20;
const slots = 16;
// Writes to the file go in pieces of this size: on this project's VMs one 1 MiB write() into a
// fresh file's page cache ran 8 times slower than the same MiB in 32 KiB writes.
const writeBytes = 32 << 10;

// Runs in a worker: reads the FIFO into a ring of shared 1 MiB slots, writes each to the file,
// and hands it over by number to be hashed. A pipe holds 64 KiB, so a reader that also hashed
// would stall the writer at every chunk; the write here and the hash on the main thread run side
// by side. The ring is reused, so no fresh memory per chunk.
const readerSource = `
const { workerData, parentPort } = require('node:worker_threads');
const { openSync, readSync, writeSync, closeSync } = require('node:fs');
const { fifo, out, ring, inUse, chunkBytes, slots, writeBytes } = workerData;
const fd = openSync(fifo, 'r');
const file = openSync(out, 'w');
for (let slot = 0; ; slot = (slot + 1) % slots) {
  for (let seen; (seen = Atomics.load(inUse, 0)) >= slots;) Atomics.wait(inUse, 0, seen, 100);
  const bytes = new Uint8Array(ring, slot * chunkBytes, chunkBytes);
  let n = 0;
  while (n < chunkBytes) {
    const got = readSync(fd, bytes, n, chunkBytes - n, null);
    if (got === 0) break;
    n += got;
  }
  if (n > 0) {
    for (let off = 0; off < n;) off += writeSync(file, bytes, off, Math.min(writeBytes, n - off));
    Atomics.add(inUse, 0, 1);
    parentPort.postMessage({ slot, n });
  }
  if (n < chunkBytes) break;
}
closeSync(fd);
closeSync(file);
parentPort.postMessage(null);
`;

/**
 * Runs `produce(fifo)`, a program that writes a stream to the FIFO path it is given, and writes
 * that stream to `out` while taking its sha256: reading and writing on a worker, hashing on this
 * thread, so the producer, the write and the hash overlap. Returns the sha256.
 */
export async function captureHashed(out: string, produce: (fifo: string) => Promise<unknown>): Promise<string> {
  const dir = await mkdtemp(join(dirname(out), '.fifo-'));
  const fifo = join(dir, 'stream');
  const hash = createHash('sha256');
  try {
    await run('mkfifo', [fifo]);
    const ring = new SharedArrayBuffer(chunkBytes * slots);
    const inUse = new Int32Array(new SharedArrayBuffer(4));
    const worker = new Worker(readerSource, { eval: true, workerData: { fifo, out, ring, inUse, chunkBytes, slots, writeBytes } });
    const drained = new Promise<void>((resolve, reject) => {
      worker.on('message', (m: { slot: number; n: number } | null) => {
        if (m === null) return resolve();
        try {
          hash.update(Buffer.from(ring, m.slot * chunkBytes, m.n));
        } catch (error) {
          reject(error);
          void worker.terminate();
          return;
        }
        Atomics.sub(inUse, 0, 1);
        Atomics.notify(inUse, 0);
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`the FIFO reader stopped (exit ${code}) before the end of the stream`)));
    });
    let finished = false;
    void drained.then(() => { finished = true; }, () => { finished = true; });
    const unblock = async () => {
      // A producer that failed before opening the FIFO leaves the worker waiting in open():
      // opening the other end and closing it gives the worker its end of file. ENXIO means no
      // reader has it open yet (the worker is starting) or any more (it is done).
      while (!finished) {
        try {
          return closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    try {
      await produce(fifo);
    } catch (error) {
      await unblock();
      await drained.catch(() => {});
      throw error;
    }
    await unblock();
    await drained;
    return hash.digest('hex');
  } catch (error) {
    await rm(out, { force: true }); // no partial output
    throw error;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
