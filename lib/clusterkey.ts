import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { UserError } from './errors.ts';

/**
 * The cluster's key: an Ed25519 seed that lets nodes run commands on each other (onnode). Made
 * once per cache at build time unless --cluster-key names a file (64 hex digits), so no two
 * sites share a secret and a rebuild keeps the key.
 */
export async function clusterKeySeed(file: string, create: boolean): Promise<Buffer> {
  if (!existsSync(file)) {
    if (!create) throw new UserError(`--cluster-key ${file}: no such file`);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    await rename(tmp, file);
  }
  const text = (await readFile(file, 'utf8')).trim();
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new UserError(`--cluster-key ${file}: must hold 64 hexadecimal digits (an Ed25519 seed)`);
  return Buffer.from(text, 'hex');
}

function publicKey(seed: Buffer): Buffer {
  const priv = createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8' });
  return createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(-32);
}

function sshString(data: Buffer | string): Buffer {
  const body = Buffer.from(data);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** Dropbear's private key file for an Ed25519 seed: string type, uint32 64, seed, public key. */
export function dropbearPrivateKey(seed: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(64);
  return Buffer.concat([sshString('ssh-ed25519'), len, seed, publicKey(seed)]);
}

/** The authorized_keys line for the seed's public key. */
export function authorizedKeyLine(seed: Buffer, options: string, comment: string): string {
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(publicKey(seed))]).toString('base64');
  return `${options} ssh-ed25519 ${blob} ${comment}\n`;
}
