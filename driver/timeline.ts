import { readFileSync } from 'node:fs';

/**
 * Where a boot's time went, from a VM's timed serial log (Machine writes NAME.serial.timed.log:
 * each console line with the seconds since power-on it arrived at). The guest's own clock starts
 * with its kernel; this one starts with the firmware.
 */
export interface Phase { name: string; at: number }

/** The milestones of a boot, in the order they happen; a boot shows those its path has. */
const milestones: { name: string; pattern: RegExp }[] = [
  { name: 'boot loader', pattern: /^(ISOLINUX|PXELINUX|SYSLINUX) \d|Welcome to GRUB|^iPXE / },
  // syslinux's "Loading NAME... ok" for the initrd, the last thing it loads (TFTP or disk).
  { name: 'initrd loaded', pattern: /^Loading \S*(minirt|initrd)\S*\.\.\. ?ok/ },
  { name: 'kernel running', pattern: /^\[\s*0\.0+\] Linux version / },
  { name: 'root found', pattern: /^minirt: found the medium|^knoppix-minirt: |Mounted .*\/run\/live\/medium/ },
  { name: 'init', pattern: /^INIT: version|systemd\[1\]: |^Welcome to Debian/ },
  { name: 'interconnect', pattern: /openssi: node \d+ \(\S+\) on / },
  { name: 'shell', pattern: /root@[\w-]+:[^\n]*# / },
];

/** The milestones a timed log shows, each at its first line. */
export function bootPhases(timedLog: string): Phase[] {
  const phases: Phase[] = [];
  let next = 0;
  for (const line of timedLog.split('\n')) {
    const m = /^\s*([\d.]+) (.*)$/.exec(line);
    if (!m) continue;
    // A later milestone may show first (a quiet kernel prints nothing): look at every one left.
    for (let i = next; i < milestones.length; i++) {
      if (milestones[i].pattern.test(m[2])) {
        phases.push({ name: milestones[i].name, at: Number(m[1]) });
        next = i + 1;
        break;
      }
    }
  }
  return phases;
}

/** "boot loader 2.3 s, kernel running +5.1 s, ...": each milestone, the time since the one before. */
export function formatPhases(phases: Phase[]): string {
  return phases.map((p, i) => (i === 0 ? `${p.name} ${p.at.toFixed(1)} s` : `${p.name} +${(p.at - phases[i - 1].at).toFixed(1)} s`)).join(', ');
}

/** The timeline of the VM whose serial log is `serialLog` (its timed log beside it). */
export function timelineOf(serialLog: string): string {
  return formatPhases(bootPhases(readFileSync(serialLog.replace(/\.serial\.log$/, '.serial.timed.log'), 'utf8')));
}
