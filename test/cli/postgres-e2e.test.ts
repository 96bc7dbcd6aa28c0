import { spawn } from 'node:child_process';
import type { ChildProcessByStdio } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, cleanEnv, cli, repoRoot, tempProject } from '../support/cli.ts';
import type { CliResult } from '../support/cli.ts';
import { loginWorks, startTestPostgres } from '../support/postgres.ts';
import type { TestPostgres } from '../support/postgres.ts';

/*
 * The "done when", as a new user would do it: the bundled example
 * goal (examples/postgres/app.yaml) against a fresh PostgreSQL, through the
 * real CLI and the real daemon. One lifecycle, in order: each step starts
 * from the state the previous one left.
 */

// Not ASCII, and its own SASLprep form: the CLI loads SASLprep the first time it meets such a password
// (src/backends/postgres/scram.ts), here from the start-up snapshot; node-postgres logs in with it as given.
const APP_PASSWORD = 'app-Secret-7c1f9e2b-Ωé';
let server: TestPostgres;
const p = tempProject('ds-pg-e2e-');
/** Every byte any command printed, to check that no password ever shows. */
const printed: string[] = [];
const env = (): NodeJS.ProcessEnv => ({ PGPASSWORD_TEST: server.password, ORDERS_APP_PASSWORD: APP_PASSWORD });
const run = async (args: string[]): Promise<CliResult> => {
  const r = await cli([...args, ...p.args], { env: env() });
  printed.push(r.stdout, r.stderr);
  return r;
};

beforeAll(async () => {
  server = await startTestPostgres();
  p.write(
    'backend.yaml',
    `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: pg }
spec:
  type: postgres
  config:
    host: 127.0.0.1
    port: ${server.port}
    user: ${server.user}
    database: postgres
    password: { fromEnv: PGPASSWORD_TEST }
    sslmode: disable
    connectTimeout: 2s
`,
  );
  p.write('app.yaml', readFileSync(join(repoRoot, 'examples/postgres/app.yaml'), 'utf8'));
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  rmSync(p.dir, { recursive: true, force: true });
});

const connLimit = async (role: string): Promise<number> =>
  (await server.sql<{ rolconnlimit: number }>('SELECT rolconnlimit FROM pg_roles WHERE rolname = $1', [role]))[0]!.rolconnlimit;

describe('postgres end to end: the example goal through the CLI and the daemon', () => {
  it('apply converges the app database (roles, database, schema, grants, default privileges, extension); plan is then empty', async () => {
    const apply = await run(['apply']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toMatch(/0 failed, 0 blocked, 0 held/);

    const roles = await server.sql<{ rolname: string; rolcanlogin: boolean; rolconnlimit: number }>(
      "SELECT rolname, rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname LIKE 'orders\\_%' ORDER BY rolname",
    );
    expect(roles).toEqual([
      { rolname: 'orders_app', rolcanlogin: true, rolconnlimit: 20 },
      { rolname: 'orders_owner', rolcanlogin: false, rolconnlimit: -1 },
      { rolname: 'orders_ro', rolcanlogin: false, rolconnlimit: -1 },
      { rolname: 'orders_rw', rolcanlogin: false, rolconnlimit: -1 },
    ]);
    expect(await server.sql("SELECT pg_has_role('orders_app', 'orders_rw', 'MEMBER') AS m")).toEqual([{ m: true }]);
    expect(await server.sql("SELECT pg_get_userbyid(datdba) AS owner, datconnlimit FROM pg_database WHERE datname = 'orders'")).toEqual([
      { owner: 'orders_owner', datconnlimit: 100 },
    ]);
    expect(await server.sql("SELECT pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = 'app'", [], 'orders')).toEqual([{ owner: 'orders_owner' }]);
    expect(await server.sql("SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'", [], 'orders')).toEqual([{ extname: 'pgcrypto' }]);
    // The service can log in with its password and reaches the schema through orders_rw.
    expect(await loginWorks(server, 'orders_app', APP_PASSWORD)).toBe(true);
    expect(
      await server.sql(
        "SELECT has_database_privilege('orders_app', 'orders', 'CONNECT') AS c, has_schema_privilege('orders_app', 'app', 'USAGE') AS u, has_schema_privilege('orders_ro', 'app', 'CREATE') AS ro_create",
        [],
        'orders',
      ),
    ).toEqual([{ c: true, u: true, ro_create: false }]);
    // Default privileges: a table the owner creates later is readable by orders_ro and writable by orders_rw.
    const owner = await server.client('orders');
    try {
      await owner.query('SET ROLE orders_owner');
      await owner.query('CREATE TABLE app.orders (id bigserial PRIMARY KEY, ref uuid DEFAULT gen_random_uuid())');
    } finally {
      await owner.end();
    }
    expect(
      await server.sql(
        "SELECT has_table_privilege('orders_ro', 'app.orders', 'SELECT') AS ro_sel, has_table_privilege('orders_ro', 'app.orders', 'INSERT') AS ro_ins, has_table_privilege('orders_rw', 'app.orders', 'INSERT') AS rw_ins, has_sequence_privilege('orders_rw', 'app.orders_id_seq', 'USAGE') AS rw_seq",
        [],
        'orders',
      ),
    ).toEqual([{ ro_sel: true, ro_ins: false, rw_ins: true, rw_seq: true }]);

    const plan = await run(['plan']);
    expect(plan.stdout).toContain('0 to create, 0 to update, 0 to delete, 0 drifted, 19 unchanged');
    expect(plan.code).toBe(0);
  }, 60_000);

  it('an ALTER ROLE by hand shows in plan as ! drift with the field diff', async () => {
    await server.sql('ALTER ROLE orders_app CONNECTION LIMIT 50');
    const plan = await run(['plan']);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/^ {2}! orders-app \(postgres\.role via pg\) drifted/m);
    expect(plan.stdout).toMatch(/^ {6}connectionLimit: 50 → 20$/m);
  }, 30_000);

  it('the daemon reports the drift as a JSON line and repairs it within the interval, rides out a server outage, recovers, and exits 0 on SIGTERM', async () => {
    // The example's three roles are its only nodes that depend on none: once one fails, the nodes that
    // depend on it are blocked, not observed. How many different nodes fail before that is up to the order
    // the jittered interval brings them in, and the circuit opens on failures of 5 different nodes by
    // default (fewer is left to each node's backoff): 3, the roles alone, opens it whatever that order.
    const policy = join(p.dir, 'fault-policy.yaml');
    writeFileSync(policy, 'circuitBreaker: { failureThreshold: 3 }\n');
    const d = new Daemon(['run', '--interval', '1s', '--listen', '127.0.0.1:0', '--fault-policy', policy, ...p.args], env());
    try {
      const listening = await d.waitFor((l) => l.msg === 'listening');
      const address = String(listening.address);

      const drift = await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'orders-app');
      expect(drift).toMatchObject({ level: 40, node: 'orders-app', backend: 'pg', diffs: [{ path: 'connectionLimit', desired: 20, actual: 50 }] });
      await d.waitFor((l) => l.msg === 'node updated' && l.node === 'orders-app');
      expect(await connLimit('orders_app')).toBe(20);
      // Steady now: a new hand edit is found by the next interval's observation (1 s, with jitter) and repaired.
      await server.sql('ALTER ROLE orders_app CONNECTION LIMIT 50');
      const again = d.lines.length;
      await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'orders-app', again, 10_000);
      await d.waitFor((l) => l.msg === 'node updated' && l.node === 'orders-app', again, 10_000);
      expect(await connLimit('orders_app')).toBe(20);

      // Outage: the daemon keeps running, logs classified transient faults with a growing backoff, stays healthy.
      await server.stop();
      const firstFault = await d.waitFor((l) => l.msg === 'observe failed' && isTransient(l.fault));
      // A first failure's delay is full jitter below the 1 s base: [0, 1000) ms (0 itself is a legal draw).
      expect(Number(firstFault.retryInMs)).toBeGreaterThanOrEqual(0);
      expect(Number(firstFault.retryInMs)).toBeLessThan(1000);
      // Consecutive failures open the backend's circuit: its nodes wait for one probe instead of hammering the server.
      const open = await d.waitFor((l) => l.msg === 'backend circuit open');
      expect(open).toMatchObject({ backend: 'pg', fault: { class: 'transient' } });
      expect(Number(open.probeInMs)).toBeGreaterThan(0);
      const attempts = d.lines.filter((l) => l.msg === 'observe failed' && l.node === firstFault.node).map((l) => Number(l.attempts));
      expect(attempts).toEqual(attempts.map((_, i) => i + 1));
      expect((await fetch(`http://${address}/healthz`)).status).toBe(200);
      expect(d.exited).toBe(false);

      // Back: everything converges again, including a drift made right after the restart.
      await server.start();
      await server.sql('ALTER ROLE orders_app CONNECTION LIMIT 50');
      const mark = d.lines.length;
      await d.waitFor((l) => l.msg === 'node updated' && l.node === 'orders-app', mark, 60_000);
      expect(await connLimit('orders_app')).toBe(20);
      expect(d.lines.some((l) => l.level !== undefined && Number(l.level) >= 50 && l.msg !== 'node held')).toBe(false);
      expect(d.lines.some((l) => l.msg === 'node held')).toBe(false);
      expect((await fetch(`http://${address}/healthz`)).status).toBe(200);

      expect(await d.stop()).toBe(0);
    } finally {
      d.kill();
      printed.push(d.stdout, d.stderr);
    }
    const plan = await run(['plan']);
    expect(plan.code).toBe(0);
  }, 120_000);

  it('no password appears in any output nor in the state store', async () => {
    const secrets = [APP_PASSWORD, server.password];
    for (const text of printed) for (const s of secrets) expect(text.includes(s)).toBe(false);
    const stateFiles = readdirSync(p.state).filter((f) => f.startsWith('state.db'));
    expect(stateFiles).toContain('state.db');
    for (const f of stateFiles) {
      const bytes = readFileSync(join(p.state, f));
      for (const s of secrets) expect(bytes.includes(Buffer.from(s, 'utf8'))).toBe(false);
    }
  });
});

function isTransient(f: unknown): boolean {
  return typeof f === 'object' && f !== null && (f as { class?: unknown }).class === 'transient';
}

type LogLine = Record<string, unknown>;

/** The daemon as a child process, its stderr read as JSON log lines. */
class Daemon {
  readonly lines: LogLine[] = [];
  stdout = '';
  stderr = '';
  exited = false;
  private readonly child: ChildProcessByStdio<null, Readable, Readable>;
  private readonly exit: Promise<number | null>;
  private waiters: (() => void)[] = [];

  constructor(args: string[], extraEnv: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, [bin, ...args], { cwd: repoRoot, env: cleanEnv(extraEnv), stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    // Logs are JSON lines on stderr; stdout carries command output (none for run).
    this.child.stdout.on('data', (d: Buffer) => (this.stdout += d.toString('utf8')));
    this.child.stderr.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      this.stderr += text;
      partial += text;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) if (line.trim() !== '') this.lines.push(JSON.parse(line) as LogLine);
      this.notify();
    });
    this.exit = new Promise((resolve) =>
      this.child.on('exit', (code) => {
        this.exited = true;
        this.notify();
        resolve(code);
      }),
    );
  }

  /** The first line from `from` on that matches, waiting for it. */
  async waitFor(match: (l: LogLine) => boolean, from = 0, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(from).find(match);
      if (found !== undefined) return found;
      if (this.exited) throw new Error(`daemon exited while waiting; stderr: ${this.stderr.slice(-2000)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${this.stderr.split('\n').slice(-10).join('\n')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** SIGTERM, then the exit code. */
  async stop(): Promise<number | null> {
    this.child.kill('SIGTERM');
    return this.exit;
  }

  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
