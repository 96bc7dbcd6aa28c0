/**
 * The daemon left running: what grows with the number of passes.
 *
 *   npx node bench/daemon/soak.ts                                  # 300 files, --interval 2s, 3 minutes
 *   npx node bench/daemon/soak.ts --files 3000 --interval 60s --minutes 5
 *   npx node bench/daemon/soak.ts --files 10 --minutes 3 --flap    # plus a file rewritten every 200 ms for a minute
 *
 * Starts `desiredstate run --listen 127.0.0.1:0` on N local.file nodes in a
 * temp directory, waits for /readyz, then samples the process every
 * `--sample` from /proc: resident memory (VmRSS), CPU (utime + stime), open
 * file descriptors, inotify watches, the sizes of state.db and its WAL, and
 * the log lines written. Prints one row per sample, then the growth from the
 * first sample to the last per pass, and CPU per pass. A steady daemon should
 * show flat memory (after the first GC cycles), flat descriptors, watches and
 * WAL, no log lines, and CPU per pass that does not depend on the pass count.
 *
 * With --flap, one managed file is rewritten with a new value every 200 ms
 * during the second minute: the `drift detected` lines and corrections it
 * causes are counted (corrections back off and are flagged `flapping`; the
 * log stays bounded), and the file must be back in place at the end.
 *
 * Not part of `npm run bench` (it runs for minutes on purpose); Linux only (/proc).
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/runtime/index.ts';

const repoRoot = new URL('../../', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    files: { type: 'string', default: '300' },
    interval: { type: 'string', default: '2s' },
    minutes: { type: 'string', default: '3' },
    sample: { type: 'string', default: '10s' },
    flap: { type: 'boolean', default: false },
  },
});
const N = Number(args.files);
const intervalMs = parseDuration(args.interval) ?? 2000;
const durationMs = Number(args.minutes) * 60_000;
const sampleMs = parseDuration(args.sample) ?? 10_000;
const TICKS = 100; // USER_HZ on Linux

interface Sample {
  readonly t: number;
  readonly rssKiB: number;
  readonly cpuS: number;
  readonly fds: number;
  readonly watches: number;
  readonly db: number;
  readonly wal: number;
  readonly lines: number;
  /**
   * Nodes the daemon took from its queue since its start (`/status` queue.handedOut): a node passed over
   * counts too (held, blocked, in its backoff), but these files are ready, so one per observation (the
   * --flap file's edits, which wake it in its backoff, add a few).
   */
  readonly handedOut: number;
}

const sizeOf = (p: string): number => {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
};

async function sample(pid: number, port: number, state: string, t: number, lines: number): Promise<Sample> {
  const handedOut = ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { queue: { handedOut: number } }).queue.handedOut;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // Fields 14 and 15 of /proc/PID/stat (after the parenthesised command name).
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(rest[11]) + Number(rest[12])) / TICKS;
  let fds = 0;
  let watches = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    fds++;
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:inotify') continue;
      watches += readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify')).length;
    } catch {
      // closed meanwhile
    }
  }
  return { t, rssKiB, cpuS, fds, watches, db: sizeOf(join(state, 'state.db')), wal: sizeOf(join(state, 'state.db-wal')), lines, handedOut };
}

const dir = mkdtempSync(join(tmpdir(), 'ds-soak-'));
const goals = join(dir, 'goals');
const state = join(dir, 'state');
const root = join(dir, 'root');
mkdirSync(goals);
const doc = [
  'apiVersion: desiredstate/v1',
  'kind: Backend',
  'metadata: { name: files }',
  'spec:',
  '  type: local',
  `  config: { root: "${root}" }`,
  '---',
  'apiVersion: desiredstate/v1',
  'kind: Goal',
  'metadata: { name: soak, environment: dev }',
  'spec:',
  '  defaults: { backend: files }',
  '  nodes:',
];
for (let i = 1; i <= N; i++) doc.push(`    - id: f${i}`, '      type: local.file', `      spec: { path: "files/d${Math.floor(i / 100)}/f${i}", content: "file ${i}\\n", mode: "0644" }`);
writeFileSync(join(goals, 'goals.yaml'), `${doc.join('\n')}\n`);

const child = spawn(process.execPath, [join(repoRoot, 'bin/desiredstate.js'), 'run', '--goals', goals, '--state', state, '--interval', args.interval, '--listen', '127.0.0.1:0', '--log-level', 'info'], {
  stdio: ['ignore', 'ignore', 'pipe'],
  env: { ...process.env, DESIREDSTATE_LOG_FORMAT: 'json' },
});
let lines = 0;
let drift = 0;
let flapping = 0;
let corrections = 0;
let port = 0;
createInterface({ input: child.stderr! }).on('line', (text) => {
  lines++;
  if (!text.startsWith('{')) return;
  const l = JSON.parse(text) as Record<string, unknown>;
  if (l.msg === 'listening') port = Number(String(l.address).split(':').at(-1));
  if (l.msg === 'drift detected') {
    drift++;
    if (l.flapping === true) flapping++;
  }
  if (l.msg === 'node updated') corrections++;
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

try {
  for (let waited = 0; ; waited += 200) {
    if (waited > 120_000) throw new Error('the daemon was not ready within 2 minutes');
    if (port > 0 && (await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status, () => 0)) === 200) break;
    await sleep(200);
  }
  const pid = child.pid!;
  const start = Date.now();
  const linesAtReady = lines;
  const samples: Sample[] = [];
  console.log(`soak: ${N} files, --interval ${args.interval}, ${args.minutes} min, sample every ${args.sample}${args.flap ? ', one file rewritten every 200 ms in minute 2' : ''}`);
  console.log('t_s  rss_MiB  cpu_s  fds  watches  db_KiB  wal_KiB  log_lines');
  let flapper: Promise<void> = Promise.resolve();
  if (args.flap) {
    flapper = (async () => {
      await sleep(60_000);
      const file = join(root, 'files/d0/f1');
      for (let k = 0, end = Date.now() + 60_000; Date.now() < end; k++) {
        writeFileSync(file, `theirs ${k}\n`);
        await sleep(200);
      }
    })();
  }
  while (Date.now() - start <= durationMs) {
    const s = await sample(pid, port, state, Math.round((Date.now() - start) / 1000), lines - linesAtReady);
    samples.push(s);
    console.log(`${String(s.t).padStart(4)}  ${(s.rssKiB / 1024).toFixed(1).padStart(7)}  ${s.cpuS.toFixed(2).padStart(5)}  ${String(s.fds).padStart(3)}  ${String(s.watches).padStart(7)}  ${String(Math.round(s.db / 1024)).padStart(6)}  ${String(Math.round(s.wal / 1024)).padStart(7)}  ${String(s.lines).padStart(9)}`);
    await sleep(sampleMs);
  }
  await flapper;
  const first = samples[0]!;
  const last = samples.at(-1)!;
  // Passes by the clock, for the rates; the nodes the daemon says it took from its queue (/status
  // queue.handedOut: re-observations, and also corrections and skipped backoffs) show it kept at them:
  // a daemon that stopped reconciling would otherwise show an excellent CPU per pass.
  const passes = (last.t - first.t) / (intervalMs / 1000);
  const handedOut = last.handedOut - first.handedOut;
  if (handedOut < passes * N * 0.5) {
    console.error(`the daemon took ${handedOut} nodes from its queue: ${(handedOut / N).toFixed(1)} times the ${N} files, where --interval ${args.interval} makes ${passes.toFixed(1)} passes`);
    process.exitCode = 1;
  }
  console.log(
    `over ${passes.toFixed(0)} passes (by the interval; ${handedOut} nodes taken from the queue): CPU ${(((last.cpuS - first.cpuS) / passes) * 1000).toFixed(1)} ms/pass (${((last.cpuS - first.cpuS) / (last.t - first.t)).toFixed(4)} CPU-s/s); ` +
      `RSS ${(first.rssKiB / 1024).toFixed(1)} → ${(last.rssKiB / 1024).toFixed(1)} MiB (max ${(Math.max(...samples.map((s) => s.rssKiB)) / 1024).toFixed(1)}); ` +
      `fds ${first.fds} → ${last.fds}; watches ${first.watches} → ${last.watches}; WAL ${Math.round(first.wal / 1024)} → ${Math.round(last.wal / 1024)} KiB (max ${Math.round(Math.max(...samples.map((s) => s.wal)) / 1024)}); ` +
      `log lines ${last.lines} (${(last.lines / passes).toFixed(2)}/pass)`,
  );
  if (args.flap) {
    const back = readFileSync(join(root, 'files/d0/f1'), 'utf8') === 'file 1\n';
    console.log(`flap: ${drift} 'drift detected' lines (${flapping} flagged flapping), ${corrections} corrections; file back in place at the end: ${back}`);
  }
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
}
