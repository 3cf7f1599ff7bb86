import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootPhases, formatPhases } from '../driver/timeline.ts';

// The shape of a PXE node's timed serial log (seconds since power-on, then the line).
const pxeNode = [
  '   18.76 ',
  '   18.76 PXELINUX 6.04 PXE 20200816 Copyright (C) 1994-2015 H. Peter Anvin et al',
  '   29.32 Loading netboot/linux... ok',
  '   38.15 Loading netboot/minirt.gz...ok',
  '   44.81 [    0.000000] Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org)',
  '   50.11 minirt: node 2: eth0 10.0.0.2/8, fetching the root images from 10.0.0.1',
  '   66.15 minirt: found the medium on the network',
  '   66.93 INIT: version 3.06 booting',
  '   89.71 openssi: node 2 (node2) on eth0 10.0.0.2/8, cluster KNOPPIX-OpenSSI',
  '  102.20 root@node2:~# ',
].join('\n');

test('a netbooted node\'s milestones, each at its first line, and the time between them', () => {
  const phases = bootPhases(pxeNode);
  assert.equal(phases.map((p) => p.name), ['boot loader', 'initrd loaded', 'kernel running', 'root found', 'init', 'interconnect', 'shell']);
  assert.is(phases[0].at, 18.76);
  assert.is(formatPhases(phases).split(', ')[1], 'initrd loaded +19.4 s');
});

test('a quiet kernel shows no line of its own: the milestones after it are still found', () => {
  const quiet = pxeNode.split('\n').filter((l) => !l.includes('Linux version')).join('\n');
  assert.not.ok(bootPhases(quiet).some((p) => p.name === 'kernel running'));
  assert.is(bootPhases(quiet).at(-1)!.name, 'shell');
});

test.run();
