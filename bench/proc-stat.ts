/**
 * CPU time read from /proc (Linux): the whole machine's, and one process's. Shared by the load
 * generator (its edge readings) and the stall sampler.
 */
import { readFileSync } from 'node:fs';

/** utime + stime (or stime alone) of a /proc/<pid>/stat line, in ms (USER_HZ is 100). */
export function cpuMsOf(stat: string, sysOnly = false): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (((sysOnly ? 0 : Number(fields[11])) + Number(fields[12])) * 1000) / 100;
}

/** The CPU a process has used so far, in ms; 0 when it has exited (or is not on this machine). */
export function processCpuMs(pid: number): number {
  try {
    return cpuMsOf(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

/** The machine's busy and total CPU time so far (all cores), in /proc/stat's ticks. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** How busy the machine was between two readings, %. */
export function busyPct(a: { busy: number; total: number }, b: { busy: number; total: number }): number {
  const total = b.total - a.total;
  return total > 0 ? (100 * (b.busy - a.busy)) / total : 0;
}
