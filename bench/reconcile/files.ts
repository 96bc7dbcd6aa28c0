/**
 * The local backend on real files: the steady-state pass inside the daemon,
 * and drift latency through the CLI daemon.
 *
 *   npx node bench/reconcile/files.ts                    # both, 10k files, 20 edits
 *   npx node bench/reconcile/files.ts --files 10000 --passes 7
 *   npx node bench/reconcile/files.ts --latency-only --files 1000 --edits 20
 *
 * 1. Steady state in the daemon: one local.directory and N local.file nodes
 *    (`file i\n`, 0644), the Controller with the local backend and the real
 *    SQLite store, in this process; converge, then time `reconcileAll()`
 *    over the N in-sync files. Twice: with the backend's default
 *    `rereadEvery` (1h: a file found exactly as it was last read, same
 *    device, inode, size, mtime and ctime, is stat'ed and not read again)
 *    and with `rereadEvery: always` (every file stat'ed, read and hashed on
 *    every pass). Each pass's read(2) calls (from /proc/self/io, the whole
 *    process: SQLite's and the thread pool's wake-ups included) are printed beside its time, so the
 *    figures show which path they measured. `--reread default|always`
 *    runs one of them. Bar (issue 3): under 300 ms for 10k files.
 * 2. Drift latency: `desiredstate run --interval 60s --listen 127.0.0.1:0`
 *    on N files; once ready, overwrite one random managed file at a time
 *    (different content, so the content differs whatever the size) and time
 *    until that node's `drift detected` JSON line arrives on the daemon's
 *    stderr; then wait for the repair before the next edit. Bar: median
 *    under 1 s with a 60 s interval (only the file watch can be that fast).
 *
 * The repair pass (10 % content edits + 5 % chmods) and the one-shot CLI
 * against CFEngine, Puppet and Ansible are in bench/reconcile/peers.sh.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DesiredGraph } from '../../src/runtime/index.ts';
import type { DesiredNode } from '../../src/runtime/index.ts';
import { desiredNodeSpec } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec, InfraNodeSpec } from '../../src/infra/index.ts';
import { LocalBackend } from '../../src/backends/local/index.ts';
import { RACY_MARGIN_MS } from '../../src/backends/local/client.ts';
import { benchController } from './controller.ts';

const repoRoot = new URL('../../', import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    files: { type: 'string', default: '10000' },
    passes: { type: 'string', default: '7' },
    edits: { type: 'string', default: '20' },
    'latency-files': { type: 'string' },
    'latency-only': { type: 'boolean', default: false },
    'steady-only': { type: 'boolean', default: false },
    reread: { type: 'string', default: 'both' },
  },
});
const N = Number(args.files);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const quantile = (xs: readonly number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!;

function buildGraph(n: number): DesiredGraph<InfraDesiredNodeSpec> {
  const settings = { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] } as const;
  const node = (id: string, spec: InfraNodeSpec, deps: string[], line: number): DesiredNode<InfraDesiredNodeSpec> => ({
    id,
    goal: 'bench',
    spec: desiredNodeSpec(spec, 'files', {}),
    dependsOn: deps.map((on) => ({ on, source: { file: 'bench.yaml', line, col: 1 }, implicit: false })),
    settings,
    source: { file: 'bench.yaml', line, col: 1 },
  });
  const nodes = [node('dir', { type: 'local.directory', path: 'files', mode: '0755' }, [], 1)];
  for (let i = 1; i <= n; i++) nodes.push(node(`f${i}`, { type: 'local.file', path: `files/f${i}`, content: `file ${i}\n`, mode: '0644' }, ['dir'], i + 1));
  const built = DesiredGraph.build(nodes);
  if (!built.ok) throw new Error('bench graph does not build');
  return built.graph;
}

/** read(2) calls made so far by this process, all threads (the thread pool's and SQLite's too). */
function readCalls(): number {
  const m = /^syscr: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'));
  if (m === null) throw new Error('no syscr in /proc/self/io');
  return Number(m[1]);
}

/** Steady-state passes over n in-sync files inside the Controller, with the local backend and SQLite. */
/** Resolves with the median read(2) calls of its steady passes. */
async function steadyInDaemon(n: number, passes: number, reread: 'default' | 'always'): Promise<number> {
  const config = reread === 'always' ? { root: 'root', rereadEvery: 'always' as const } : { root: 'root' };
  const bench = benchController('ds-bench-files-', 'files', (dir, log) => new LocalBackend({ ...config, root: join(dir, 'root') }, { id: 'files', cwd: dir, log }));
  const { dir, store } = bench;
  const converge = await bench.converge(buildGraph(n));
  // A read is trusted only once the file's ctime is 100 ms behind it (the racy window): the first
  // passes after a converge read the newest files again. Past it, one untimed pass, as a daemon's
  // first after its start, so that the passes timed are the steady state's.
  await new Promise((r) => setTimeout(r, 2 * RACY_MARGIN_MS));
  await bench.pass();
  const times: number[] = [];
  const reads: number[] = [];
  for (let i = 0; i < passes; i++) {
    const before = readCalls();
    times.push(await bench.pass());
    reads.push(readCalls() - before);
  }
  // Each file read on every pass with `always`; with the default, the files read since converge are trusted.
  if (reread === 'always' && median(reads) < n) throw new Error(`rereadEvery: always made ${median(reads)} read calls a pass, fewer than the ${n} files`);
  // The repair pass inside the daemon: 10 % content edits (half of them same size) + 5 % chmods, as the peers' drift phase.
  for (let i = 1; i <= n; i++) {
    if (i % 20 === 3) writeFileSync(join(dir, 'root', 'files', `f${i}`), `file ${i} edited\n`);
    else if (i % 20 === 13) writeFileSync(join(dir, 'root', 'files', `f${i}`), `file ${String(i).replace(/\d$/, (d) => String((Number(d) + 1) % 10))}\n`);
    else if (i % 40 === 7) chmodSync(join(dir, 'root', 'files', `f${i}`), 0o600);
    else if (i % 40 === 27) chmodSync(join(dir, 'root', 'files', `f${i}`), 0o755);
  }
  const repair = await bench.pass();
  const drifted = store.listDrift({ limit: 100_000 }).length;
  await bench.close();
  const path = reread === 'always' ? 'rereadEvery: always, every file read' : 'default rereadEvery 1h, unchanged files stat\'ed only';
  console.log(`steady-state pass inside the daemon (Controller + local backend + SQLite), ${n} files, ${passes} passes, ${path}`);
  console.log(`  read(2) calls each pass (the whole process: files, SQLite, the thread pool's wake-ups): ${reads.join(', ')}`);
  console.log(`  converge ${(converge / 1000).toFixed(2)} s; steady pass min ${Math.min(...times).toFixed(0)} ms, median ${median(times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms (bar: < 300 ms for 10k); repair pass (${Math.round(n * 0.15)} drifted) ${repair.toFixed(0)} ms, ${drifted} drift reports; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  return median(reads);
}

/** Median and p90 time from an out-of-band edit to its `drift detected` line, through `desiredstate run`. */
async function driftLatency(n: number, edits: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ds-bench-latency-'));
  const goals = join(dir, 'goals');
  mkdirSync(goals);
  const lines = [
    'apiVersion: desiredstate/v1',
    'kind: Backend',
    'metadata: { name: files }',
    'spec:',
    '  type: local',
    `  config: { root: "${join(dir, 'root')}" }`,
    '---',
    'apiVersion: desiredstate/v1',
    'kind: Goal',
    'metadata: { name: latency, environment: dev }',
    'spec:',
    '  defaults: { backend: files }',
    '  nodes:',
    '    - id: dir',
    '      type: local.directory',
    '      spec: { path: "files", mode: "0755" }',
  ];
  for (let i = 1; i <= n; i++) lines.push(`    - id: f${i}`, '      type: local.file', '      dependsOn: [dir]', `      spec: { path: "files/f${i}", content: "file ${i}\\n", mode: "0644" }`);
  writeFileSync(join(goals, 'goals.yaml'), `${lines.join('\n')}\n`);

  const child = spawn(join(repoRoot, 'bin/desiredstate'), ['run', '--goals', goals, '--state', join(dir, 'state'), '--interval', '60s', '--listen', '127.0.0.1:0', '--log-level', 'info'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  type Line = Record<string, unknown>;
  const waiters: { match: (l: Line) => boolean; resolve: (at: number, l: Line) => void }[] = [];
  createInterface({ input: child.stderr! }).on('line', (text) => {
    const at = performance.now();
    let line: Line;
    try {
      line = JSON.parse(text) as Line;
    } catch {
      return;
    }
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.match(line)) {
        waiters[i]!.resolve(at, line);
        waiters.splice(i, 1);
      }
    }
  });
  const next = (match: (l: Line) => boolean, timeoutMs: number, what: string): Promise<{ at: number; line: Line }> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      waiters.push({
        match,
        resolve: (at, line) => {
          clearTimeout(timer);
          resolve({ at, line });
        },
      });
    });
  const t0 = performance.now();
  try {
    const listening = String((await next((l) => l.msg === 'listening', 300_000, 'the daemon to listen')).line.address);
    for (;;) {
      const r = await fetch(`http://${listening}/readyz`).catch(() => undefined);
      if (r?.status === 200) break;
      if (performance.now() - t0 > 300_000) throw new Error('daemon not ready after 300 s');
      await new Promise((r2) => setTimeout(r2, 100));
    }
    const readyS = (performance.now() - t0) / 1000;
    const latencies: number[] = [];
    for (let k = 0; k < edits; k++) {
      const i = 1 + Math.floor(Math.random() * n);
      const id = `f${i}`;
      const detected = next((l) => l.msg === 'drift detected' && l.node === id, 30_000, `drift of ${id}`);
      const repaired = next((l) => l.msg === 'node updated' && l.node === id, 30_000, `repair of ${id}`);
      const start = performance.now();
      writeFileSync(join(dir, 'root', 'files', id), `edited by hand ${k}\n`);
      latencies.push((await detected).at - start);
      await repaired;
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 300));
    }
    console.log(`drift latency through \`desiredstate run --interval 60s\`, ${n} files, ${edits} edits one at a time (daemon ready after ${readyS.toFixed(1)} s)`);
    console.log(`  edit -> 'drift detected': median ${median(latencies).toFixed(0)} ms, p90 ${quantile(latencies, 0.9).toFixed(0)} ms, min ${Math.min(...latencies).toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms (bar: median < 1000 ms)`);
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How many more of the process's own reads (not of the files) one mode's median pass may make than the other's. */
const OTHER_READS_SLACK = 16;
if (!['both', 'default', 'always'].includes(args.reread)) throw new Error(`--reread: default, always or both, not ${args.reread}`);
if (!args['latency-only']) {
  const reads = new Map<string, number>();
  for (const reread of ['default', 'always'] as const) if (args.reread === 'both' || args.reread === reread) reads.set(reread, await steadyInDaemon(N, Number(args.passes), reread));
  // Every file read once more a pass than with the trusted memos: the `always` figures are of reads. The
  // process's other reads (SQLite, the thread pool's wake-ups) differ by a few between the two medians:
  // at 500 files, 502 against 3 failed the exact bound about one run in two.
  const more = (reads.get('always') ?? 0) - (reads.get('default') ?? 0);
  if (reads.size === 2 && more < N - OTHER_READS_SLACK) throw new Error(`rereadEvery: always made only ${more} read calls a pass more than the default, for ${N} files`);
}
if (!args['steady-only']) await driftLatency(Number(args['latency-files'] ?? N), Number(args.edits));
