/**
 * What the filesystem under `peers.sh` charges any tool for the same work, with no tool at all:
 * the floor under its converge and repair figures on this machine.
 *
 *   npx node bench/reconcile/fs-floor.ts                  # 10,000 files under /tmp and under /dev/shm
 *   npx node bench/reconcile/fs-floor.ts --n 1000 DIR...  # other sizes or places
 *
 * Each DIR is a scratch place: its subdirectory `nN` is deleted and rewritten, and removed at the
 * end with DIR itself if that leaves DIR empty; nothing else in DIR is touched.
 *
 * In each directory, a warm-up round and then three timed rounds of what the harness does around a
 * tool's runs, with plain synchronous calls from this process:
 *   1. untimed: `rm -rf` of the previous round's N files, `sync` (the harness's preparation);
 *   2. create: N small files (open O_CREAT|O_EXCL, write, close), the least any converge does;
 *   3. in place: 10 % of them rewritten as cf-agent repairs (open O_WRONLY|O_TRUNC, write, close);
 *   4. atomic: the same 10 % replaced as desiredstate, Puppet and Ansible repair (a temp file
 *      beside each, write, close, rename over it): one new inode each, and the old one freed.
 * Prints the median wall time and CPU time (user + system) of each step. On an ext4 without a
 * journal the kernel scans past every inode freed in the last minute for each inode it allocates
 * (`recently_deleted()`), so the create after a delete costs seconds where tmpfs takes a fraction
 * of one; no tool can converge faster than this line.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, openSync, renameSync, rmdirSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({ options: { n: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '3' } }, allowPositionals: true });
const N = Number(values.n);
const ROUNDS = Number(values.rounds);
if (!Number.isSafeInteger(N) || N < 10 || !Number.isSafeInteger(ROUNDS) || ROUNDS < 1) throw new Error('--n must be an integer ≥ 10 and --rounds ≥ 1');
const places = positionals.length > 0 ? positionals : ['/tmp/ds-fs-floor', ...(existsSync('/dev/shm') ? ['/dev/shm/ds-fs-floor'] : [])];

interface Cost {
  wallMs: number;
  cpuMs: number;
}

function timed(fn: () => void): Cost {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  fn();
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

function writeNew(path: string, text: string, flags: number): void {
  const fd = openSync(path, flags, 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

const CREATE = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY;
const IN_PLACE = constants.O_WRONLY | constants.O_TRUNC;
/** Every tenth file, as `drift_files` changes 10 % of the contents. */
const repaired = (dir: string): string[] => Array.from({ length: Math.floor(N / 10) }, (_, k) => join(dir, `f${k * 10 + 3}`));

function round(dir: string, r: number): { create: Cost; inPlace: Cost; atomic: Cost } {
  rmSync(dir, { recursive: true, force: true });
  spawnSync('sync');
  mkdirSync(dir, { recursive: true });
  const create = timed(() => {
    for (let i = 1; i <= N; i++) writeNew(join(dir, `f${i}`), `file ${i}\n`, CREATE);
  });
  spawnSync('sync');
  const inPlace = timed(() => {
    for (const path of repaired(dir)) writeNew(path, `in place ${r}\n`, IN_PLACE);
  });
  spawnSync('sync');
  const atomic = timed(() => {
    for (const path of repaired(dir)) {
      const tmp = `${path}.floor.tmp`;
      writeNew(tmp, `atomic ${r}\n`, CREATE);
      renameSync(tmp, path);
    }
  });
  return { create, inPlace, atomic };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
};
const fsName = (dir: string): string => {
  const type = statfsSync(dir).type;
  return ({ 0xef53: 'ext4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs' } as Record<number, string>)[type] ?? `fs 0x${type.toString(16)}`;
};

console.log(`the filesystem's own cost of the peers' work: ${N} files, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} each, medians (wall / CPU, ms)`);
console.log('| place | fs | create N after rm -rf + sync | rewrite 10 % in place | replace 10 % atomically |');
console.log('|---|---|---:|---:|---:|');
for (const place of places) {
  const dir = join(place, `n${N}`);
  round(dir, 0); // a warm-up, as the harness's run 0: every timed round follows the delete of N files
  const rounds = Array.from({ length: ROUNDS }, (_, r) => round(dir, r + 1));
  const cell = (pick: (x: (typeof rounds)[number]) => Cost): string =>
    `${median(rounds.map((x) => pick(x).wallMs)).toFixed(0)} / ${median(rounds.map((x) => pick(x).cpuMs)).toFixed(0)}`;
  console.log(`| ${place} | ${fsName(place)} | ${cell((x) => x.create)} | ${cell((x) => x.inPlace)} | ${cell((x) => x.atomic)} |`);
  rmSync(dir, { recursive: true, force: true });
  try {
    rmdirSync(place);
  } catch {
    // Not empty (the caller's own files) or already gone: left as it is.
  }
}
