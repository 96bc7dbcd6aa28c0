/**
 * PostgreSQL benchmark (issue 4): converge N login roles with a connection
 * limit from nothing, check them when nothing changed, and repair them after
 * 10 % were altered out of band — desiredstate's one-shot CLI side by side,
 * in one session, with the hand-written SQL floor (one psql script) and
 * Ansible's community.postgresql.postgresql_user, through the peer harness
 * in ../shared/bench/peers (its README.md has the method: every timed run is
 * verified against pg_roles, and steady/drift runs must rewrite exactly the
 * expected catalog rows). Then the steady-state check inside the daemon:
 * the Controller's pass, and the dispatcher's batched observe, over the same
 * N roles with a warm pool.
 *
 *   npx node bench/postgres/index.ts                      # N=1000, 3 runs, Ansible on 100 roles × 1 run
 *   N=1000 RUNS=5 ANSIBLE_N=0 npx node bench/postgres/index.ts   # no Ansible
 *   TOOLS="desiredstate psql" npx node bench/postgres/index.ts
 *
 * Needs, as root, the harness's Debian PostgreSQL 15, Ansible with
 * community.postgresql and GNU time: `../shared/bench/peers/bin/install.sh`.
 * It starts the benchmark cluster itself (bin/pg-up.sh: 127.0.0.1:55432,
 * trust authentication, fsync and synchronous_commit on).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { Controller, DesiredGraph, SqliteStateStore } from '../../src/runtime/index.ts';
import type { DesiredNode } from '../../src/runtime/index.ts';
import { desiredNodeSpec, infraSpecCodec, InfraNodeProvisioner } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';
import { postgresBackendFactory } from '../../src/backends/postgres/index.ts';

const REPO = resolve(import.meta.dirname, '../..');
const PEERS = process.env.PEERS ?? [resolve(REPO, '../shared/bench/peers'), '/work/shared/bench/peers'].find((p) => existsSync(join(p, 'bin/bench-pg.sh')));
const N = Number(process.env.N ?? 1000);
const RUNS = Number(process.env.RUNS ?? 3);
const ANSIBLE_N = Number(process.env.ANSIBLE_N ?? 100);
const ANSIBLE_RUNS = Number(process.env.ANSIBLE_RUNS ?? 1);
const TOOLS = (process.env.TOOLS ?? 'psql desiredstate ansible').split(/\s+/).filter(Boolean);
const BENCH_ROOT = process.env.BENCH_ROOT ?? '/tmp/peers-bench';
const PG_PORT = Number(process.env.PG_PORT ?? 55432);
const PHASES = ['scratch', 'steady', 'drift'] as const;
type Phase = (typeof PHASES)[number];

if (PEERS === undefined) {
  console.error('bench/postgres: the peer harness (../shared/bench/peers) is not there; set PEERS=/path/to/peers');
  process.exit(1);
}
const env = { ...process.env, BENCH_ROOT, PG_PORT: String(PG_PORT), DESIREDSTATE: join(REPO, 'bin/desiredstate') };

function sh(script: string, args: (string | number)[], extra: NodeJS.ProcessEnv = {}): void {
  const r = spawnSync(join(PEERS!, 'bin', script), args.map(String), { env: { ...env, ...extra }, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} exited ${r.status}`);
}

for (const [what, ok] of [
  ['GNU time (/usr/bin/time)', existsSync('/usr/bin/time')],
  ["Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin)", existsSync('/usr/lib/postgresql/15/bin/initdb')],
  ['psql', spawnSync('psql', ['--version']).status === 0],
  ...(TOOLS.includes('ansible') && ANSIBLE_N > 0 ? [['ansible-playbook', spawnSync('ansible-playbook', ['--version']).status === 0] as const] : []),
] as const) {
  if (!ok) {
    console.error(`bench/postgres: ${what} is missing: run ${PEERS}/bin/install.sh as root`);
    process.exit(1);
  }
}

const started = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
sh('pg-up.sh', []);
sh('gen-pg.sh', [N]);
sh('gen-desiredstate-pg.sh', [N]);
if (TOOLS.includes('ansible') && ANSIBLE_N > 0 && ANSIBLE_N !== N) sh('gen-pg.sh', [ANSIBLE_N]);

// The timed one-shot runs, each verified by the harness. Ansible last: it is by far the longest.
for (const tool of ['psql', 'desiredstate', 'ansible'].filter((t) => TOOLS.includes(t))) {
  if (tool === 'ansible') {
    if (ANSIBLE_N > 0) sh('bench-pg.sh', ['ansible', ANSIBLE_N, ANSIBLE_RUNS], { WARMUP: '0' });
  } else {
    sh('bench-pg.sh', [tool, N, RUNS]);
  }
}

// Inside the daemon: the roles exist as desired now (the last phase repaired them).
const daemon = TOOLS.includes('desiredstate') ? await inProcess() : undefined;

// ---------------------------------------------------------------------------
// Report: this session's rows of the harness's CSV.

interface Row {
  utc: string;
  tool: string;
  n: number;
  phase: Phase;
  run: number;
  wall: number;
  user: number;
  sys: number;
  correct: string;
}
const csv = readFileSync(join(BENCH_ROOT, 'results/raw.csv'), 'utf8').trim().split('\n');
const header = csv[0]!.split(',');
const col = (name: string): number => header.indexOf(name);
const rows: Row[] = csv
  .slice(1)
  .map((l) => l.split(','))
  .filter((f) => f[col('scenario')] === 'pg-roles' && f[col('utc')]! >= started && f[col('run')] !== '0')
  .map((f) => ({
    utc: f[col('utc')]!,
    tool: f[col('tool')]!,
    n: Number(f[col('n')]),
    phase: f[col('phase')] as Phase,
    run: Number(f[col('run')]),
    wall: Number(f[col('wall_s')]),
    user: Number(f[col('user_s')]),
    sys: Number(f[col('sys_s')]),
    correct: f[col('correct')]!,
  }));

const cell = (tool: string, phase: Phase): { wall: number; cpu: number; n: number; runs: number; correct: boolean } | undefined => {
  const rs = rows.filter((r) => r.tool === tool && r.phase === phase);
  if (rs.length === 0) return undefined;
  return { wall: median(rs.map((r) => r.wall)), cpu: median(rs.map((r) => r.user + r.sys)), n: rs[0]!.n, runs: rs.length, correct: rs.every((r) => r.correct === 'yes') };
};

console.log(`\n# PostgreSQL benchmark — ${new Date().toISOString().slice(0, 16)}Z, ${nproc()} cores, load average ${loadavg()}`);
console.log(`one-shot runs through ${PEERS}/bin/bench-pg.sh, every run verified (correct=yes), medians of the timed runs\n`);
console.log('| tool | N | phase | runs | wall median (s) | client CPU (s) | per role (ms) | correct |');
console.log('|---|---:|---|---:|---:|---:|---:|---|');
for (const tool of ['psql', 'desiredstate', 'ansible']) {
  for (const phase of PHASES) {
    const c = cell(tool, phase);
    if (c === undefined) continue;
    console.log(`| ${tool} | ${c.n} | ${phase} | ${c.runs} | ${c.wall.toFixed(3)} | ${c.cpu.toFixed(2)} | ${((c.wall / c.n) * 1000).toFixed(2)} | ${c.correct ? 'yes' : 'NO'} |`);
  }
}

if (daemon !== undefined) {
  console.log(`\ninside the daemon, ${N} roles, warm pool (median of ${daemon.samples} passes):`);
  console.log(`  Controller steady pass (observe + decide + state, nothing written): ${daemon.controllerMs.toFixed(1)} ms`);
  console.log(`  batched observe only (InfraNodeProvisioner → PostgresBackend):     ${daemon.observeMs.toFixed(1)} ms`);
}

// Bars (issue 4).
const ds = (p: Phase) => cell('desiredstate', p);
const bars: [string, boolean | undefined, string][] = [];
if (daemon !== undefined) bars.push([`steady check of ${N} roles inside the daemon < 50 ms`, daemon.controllerMs < 50, `${daemon.controllerMs.toFixed(1)} ms`]);
for (const phase of PHASES) {
  const d = ds(phase);
  const a = cell('ansible', phase);
  if (d !== undefined && a !== undefined) {
    // Ansible ran on fewer roles: its cost per role, times N, against ours for N.
    const ansibleForN = (a.wall / a.n) * d.n;
    const x = ansibleForN / d.wall;
    bars.push([`${phase}: ≥ 100× faster than Ansible (its ${a.n}-role run scaled per role to ${d.n})`, x >= 100, `${x.toFixed(0)}×`]);
  }
}
for (const phase of ['scratch', 'drift'] as const) {
  const d = ds(phase);
  const f = cell('psql', phase);
  if (d !== undefined && f !== undefined) bars.push([`${phase}: within 3× of the SQL floor`, d.wall <= 3 * f.wall, `${(d.wall / f.wall).toFixed(2)}×`]);
}
const st = ds('steady');
if (st !== undefined) bars.push([`steady: one-shot CLI < 250 ms, process start included`, st.wall < 0.25, `${(st.wall * 1000).toFixed(0)} ms`]);
console.log('\n| bar | measured | met |');
console.log('|---|---:|---|');
for (const [what, ok, measured] of bars) console.log(`| ${what} | ${measured} | ${ok === true ? 'yes' : 'NO'} |`);

// ---------------------------------------------------------------------------

async function inProcess(): Promise<{ controllerMs: number; observeMs: number; samples: number }> {
  const log = pino({ level: 'silent' });
  const config = postgresBackendFactory.configSchema.parse({ host: '127.0.0.1', port: PG_PORT, user: 'postgres', database: 'postgres' });
  const backend = postgresBackendFactory.create(config, { id: 'bench-pg', cwd: REPO, log, stateDir: tmpdir(), env: process.env });
  const nodes: DesiredNode<InfraDesiredNodeSpec>[] = [];
  for (let i = 1; i <= N; i++) {
    nodes.push({
      id: `u${i}`,
      goal: 'bench',
      spec: desiredNodeSpec(
        { type: 'postgres.role', name: `bench_u${i}`, login: true, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, connectionLimit: 5, memberOf: [] },
        'bench-pg',
        {},
      ),
      dependsOn: [],
      settings: { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] },
      source: { file: 'bench.yaml', line: i, col: 1 },
    });
  }
  const built = DesiredGraph.build(nodes);
  if (!built.ok) throw new Error('bench graph does not build');
  const provisioner = new InfraNodeProvisioner({ backends: new Map([['bench-pg', backend]]) });
  const dir = mkdtempSync(join(tmpdir(), 'ds-bench-pg-'));
  const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: true });
  // batchSize N: the whole level in one batch, as the daemon's first round does.
  const controller = new Controller<InfraDesiredNodeSpec>({ provisioner, store, log, codec: infraSpecCodec, intervalMs: 3_600_000, concurrency: 10, batchSize: N });
  await controller.setGraph(built.graph, {});
  controller.start();
  await controller.whenIdle();
  const notReady = controller.nodes().filter((r) => r.status !== 'ready').length;
  if (notReady > 0) throw new Error(`${notReady} roles are not ready: run the desiredstate phases first`);
  const samples = 15;
  const pass: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    await controller.reconcileAll();
    pass.push(performance.now() - t);
  }
  const ctx = { signal: new AbortController().signal, log, outputsOf: () => undefined };
  const obs: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = performance.now();
    const r = await provisioner.observe(nodes, ctx);
    obs.push(performance.now() - t);
    if ([...r.values()].some((o) => o.status !== 'upToDate')) throw new Error('a role is not up to date');
  }
  await controller.stop(1000);
  await backend.close();
  store.close();
  rmSync(dir, { recursive: true, force: true });
  return { controllerMs: median(pass), observeMs: median(obs), samples };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function nproc(): string {
  return spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
}
function loadavg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}
