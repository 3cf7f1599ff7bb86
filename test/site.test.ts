import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSite, validateSite } from '../lib/site.ts';
import { scratch } from './helpers.ts';

const rejects = (raw: unknown, pattern: RegExp) => {
  try {
    validateSite(raw, 'x/site.json');
  } catch (error: any) {
    assert.match(error.message, pattern);
    assert.is(error.name, 'UserError');
    return;
  }
  assert.unreachable(`accepted ${JSON.stringify(raw)}`);
};

test('an empty site takes every default', () => {
  const s = validateSite({});
  assert.is(s.clustername, 'KNOPPIX-OpenSSI');
  assert.is(s.interconnect.initNodeIp, '10.0.0.1');
  assert.is(s.interconnect.network, '10.0.0.0/8');
  assert.is(s.iso.volumeLabel, 'KNOPPIX');
  assert.equal(s.boot.kernelArgs, []);
});

test('each bad field is named with the file and the reason', () => {
  rejects({ clustername: 'bad name' }, /^x\/site\.json: clustername: must be a host name/);
  rejects({ clustername: 7 }, /clustername: must be a string/);
  rejects({ colour: 'red' }, /^x\/site\.json: unknown field 'colour'/);
  rejects({ boot: { timout: 3 } }, /^x\/site\.json: boot: unknown field 'timout' \(known: label, timeout, kernelArgs\)/);
  rejects({ boot: { timeout: -1 } }, /boot\.timeout: must be a whole number from 0 to 600/);
  rejects({ boot: { timeout: 1.5 } }, /boot\.timeout/);
  rejects({ boot: { kernelArgs: ['a b'] } }, /boot\.kernelArgs: \[0\] must be kernel arguments/);
  rejects({ boot: { kernelArgs: 'quiet' } }, /boot\.kernelArgs: must be a list/);
  rejects({ iso: { volumeLabel: 'lower' } }, /iso\.volumeLabel: must be 1 to 32 of A-Z/);
  rejects({ interconnect: { network: '192.168.0.0/16', initNodeIp: '192.168.0.1' } }, /interconnect\.network: the interconnect must be inside 10\.0\.0\.0\/8/);
  rejects({ interconnect: { network: '10.0.0.1/8' } }, /interconnect\.network: host bits are set/);
  rejects({ interconnect: { initNodeIp: '10.0.0.0' } }, /interconnect\.initNodeIp: 10\.0\.0\.0 is not a host address/);
  rejects({ interconnect: { network: '10.1.0.0/16', initNodeIp: '10.2.0.1' } }, /initNodeIp: 10\.2\.0\.1 is not a host address in 10\.1\.0\.0\/16/);
  rejects({ interconnect: { initNodeIp: '10.0.0.256' } }, /initNodeIp: must be an IPv4 address/);
  rejects({ initNodeName: 'KNOPPIX-OpenSSI' }, /initNodeName: must differ from clustername/);
  rejects([], /must be an object/);
  rejects({ modules: ['../x.ko'] }, /modules: \[0\] must be paths inside the site folder/);
  rejects({ modules: ['/abs/x.ko'] }, /modules: \[0\] must be paths inside the site folder/);
  rejects({ cdsl: ['etc/x'] }, /cdsl: \[0\] must be absolute paths outside/);
  rejects({ cdsl: ['/proc/x'] }, /cdsl: \[0\]/);
  rejects({ cdsl: ['/etc/../x'] }, /cdsl: \[0\]/);
  rejects({ initrdModules: ['a b'] }, /initrdModules: \[0\] must be kernel module names/);
  rejects({ initrdModules: 'ssi_compat' }, /initrdModules: must be a list/);
  rejects({ ntp: 'yes' }, /^x\/site\.json: ntp: must be true or false, got "yes"/);
  rejects({ cvip: { routing: 'TUN' } }, /^x\/site\.json: cvip\.routing: must be DR or NAT/);
  assert.is(validateSite({ cvip: { routing: 'NAT' } }).cvip.routing, 'NAT');
  rejects({ cvip: { cvips: {} } }, /cvip\.cvips: must be a list/);
  rejects({ cvip: { cvips: [{ ip: '10.0.0.300', directors: [{ node: 1 }] }] } }, /cvip\.cvips\[0\]\.ip: must be an IPv4 address/);
  rejects({ cvip: { cvips: [{ ip: '10.0.0.100', directors: [] }] } }, /cvip\.cvips\[0\]\.directors: must list at least 1/);
  rejects({ cvip: { cvips: [{ ip: '10.0.0.100', directors: [{ node: 0 }] }] } }, /cvip\.cvips\[0\]\.directors\[0\]\.node: must be a whole number from 1/);
  rejects({ cvip: { cvips: [{ ip: '10.0.0.100', directors: [{ node: 1, garpInterface: 'eth 0' }] }] } }, /directors\[0\]\.garpInterface: must be an interface name/);
  rejects({ cvip: { cvips: [{ ip: '10.0.0.100', director: [{ node: 1 }] }] } }, /cvip\.cvips\[0\]: unknown field 'director' \(known: ip, gateway, directors\)/);
  assert.equal(validateSite({}).cvip, { routing: 'DR', cvips: [] });
  assert.equal(validateSite({ cvip: { cvips: [{ ip: '10.0.0.100', directors: [{ node: 1 }] }] } }).cvip.cvips,
    [{ ip: '10.0.0.100', gateway: '', directors: [{ node: 1, garpInterface: '', syncInterface: '' }] }]);
  assert.is(validateSite({}).ntp, false);
  assert.equal(validateSite({}).nfsServer, { clients: '', export: '/cluster/export' });
  assert.equal(validateSite({ nfsServer: { clients: '192.168.1.0/24', export: '/cluster/projects/a' } }).nfsServer, { clients: '192.168.1.0/24', export: '/cluster/projects/a' });
  rejects({ nfsServer: { clients: '10.0.0.999' } }, /^x\/site\.json: nfsServer\.clients: must be an IPv4 address or network/);
  rejects({ nfsServer: { clients: '10.0.0.0/33' } }, /nfsServer\.clients: must be/);
  rejects({ nfsServer: { clients: '10.0.0.99', export: '/etc' } }, /nfsServer\.export: must be a folder inside \/cluster/);
  rejects({ nfsServer: { clients: '10.0.0.99', export: '/cluster/../etc' } }, /nfsServer\.export: must be a folder inside \/cluster/);
  rejects({ nfsServer: { clients: '10.0.0.99', export: '/cluster' } }, /nfsServer\.export: must be a folder inside \/cluster/);
  assert.is(validateSite({ ntp: true }).ntp, true);
  assert.equal(validateSite({ cdsl: ['/etc/ssh/', '/var/lib/chrony'] }).cdsl, ['/etc/ssh/', '/var/lib/chrony']);
});

test('a site.json that is not JSON names the file', async () => {
  const dir = await scratch('site-');
  await writeFile(join(dir, 'site.json'), '{ "clustername": ');
  try {
    await loadSite(dir);
    assert.unreachable('accepted broken JSON');
  } catch (error: any) {
    assert.match(error.message, new RegExp(`^${dir}/site\\.json: not valid JSON`));
  }
});

test('a folder without site.json is a site with defaults', async () => {
  const dir = await scratch('site-');
  assert.is((await loadSite(dir)).initNodeName, 'node1');
});

test.run();
