import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { hiddenPaths } from '../stages/07-inject.ts';

test('openssi.hide: a path is hidden as it is; a pattern hides the base files it matches, * within one folder', () => {
  const base = ['etc/rc2.d/S01chrony', 'etc/rc2.d/S02nfs-kernel-server', 'etc/rc3.d/S01chrony', 'etc/rc2.d/sub/S01chrony', 'etc/rc2.d/S01dnsmasq'];
  assert.equal(hiddenPaths(['# a comment', '', '/etc/exact', '/etc/rc2.d/S*chrony', '/etc/rc2.d/S*nfs-kernel-server', '/etc/rc5.d/S*chrony'], base),
    ['/etc/exact', '/etc/rc2.d/S01chrony', '/etc/rc2.d/S02nfs-kernel-server']);
  assert.equal(hiddenPaths(['/etc/rc2.d/S*(x)'], ['etc/rc2.d/S01(x)', 'etc/rc2.d/S01x']), ['/etc/rc2.d/S01(x)'], 'other characters are literal');
});

test.run();
