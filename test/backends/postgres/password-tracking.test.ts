import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempProject } from '../../support/cli.ts';
import type { CliResult } from '../../support/cli.ts';
import { loginWorks, postgresBackendDoc, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';

/*
 * A role's password digest is tracked where nobody is shown it (the node's
 * memo in state.db, returned by the create or update that set it and by
 * every observation), never in outputs: `status --format json` and the
 * daemon's `/status` show outputs. Through the real CLI, one process per
 * command, as a user runs it — with a superuser (the stored verifier is
 * readable) and with a CREATEROLE admin (it is not: the digest is all there
 * is).
 */

let server: TestPostgres;
const projects: ReturnType<typeof tempProject>[] = [];

beforeAll(async () => {
  server = await startTestPostgres();
  await server.sql(`CREATE ROLE limited_admin LOGIN CREATEROLE PASSWORD 'limited-pw'`);
}, 120_000);

afterAll(async () => {
  await server?.destroy();
  for (const p of projects) rmSync(p.dir, { recursive: true, force: true });
});

interface Setup {
  readonly name: string;
  readonly user: () => string;
  readonly password: () => string;
  readonly role: string;
}

const setups: Setup[] = [
  { name: 'superuser (verifier readable)', user: () => server.user, password: () => server.password, role: 'svc_su' },
  { name: 'CREATEROLE admin (verifier not readable)', user: () => 'limited_admin', password: () => 'limited-pw', role: 'svc_limited' },
];

/** A project with one role of `s` whose password is `$SVC_PW`; `run` sets it to `secret` (undefined: not set). */
function project(s: Setup): { run: (args: string[], secret: string | undefined) => Promise<CliResult>; stateDir: string } {
  const p = tempProject('ds-pg-pw-');
  projects.push(p);
  p.write(
    'pg.yaml',
    `${postgresBackendDoc(server, s.user())}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: pg }
  nodes:
    - id: svc
      type: postgres.role
      spec: { name: ${s.role}, login: true, password: { fromEnv: SVC_PW } }
`,
  );
  return { run: (args, secret) => cli([...args, ...p.args], { env: { PG_ADMIN_PW: s.password(), SVC_PW: secret } }), stateDir: p.state };
}

function record(stateDir: string): { outputs: Record<string, unknown>; memo: Record<string, unknown> | null } {
  const db = new Database(join(stateDir, 'state.db'), { readonly: true });
  try {
    const row = db.prepare(`SELECT outputs, memo FROM nodes WHERE id = 'svc'`).get() as { outputs: string; memo: string | null };
    return { outputs: JSON.parse(row.outputs) as Record<string, unknown>, memo: row.memo === null ? null : (JSON.parse(row.memo) as Record<string, unknown>) };
  } finally {
    db.close();
  }
}

/** Rewrites the record as a release before this one left it: the digest in outputs, no memo. */
function asOldRelease(stateDir: string, digest: string): void {
  const db = new Database(join(stateDir, 'state.db'));
  try {
    const { outputs } = record(stateDir);
    db.prepare(`UPDATE nodes SET outputs = ?, memo = NULL WHERE id = 'svc'`).run(JSON.stringify({ ...outputs, passwordDigest: digest }));
  } finally {
    db.close();
  }
}


describe.each(setups)('password tracking, $name', (s) => {
  let p: ReturnType<typeof project>;
  beforeAll(() => {
    p = project(s);
  });
  const first = `first-${s.role}-Secret`;

  it('apply sets it; the digest is in no output: not in status --format json, not in the stored outputs', async () => {
    const apply = await p.run(['apply'], first);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(await loginWorks(server, s.role, first)).toBe(true);
    // The next process observes it up to date: no second set.
    const plan = await p.run(['plan'], first);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    const again = await p.run(['apply'], first);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('0 created, 0 updated');

    const { outputs, memo } = record(p.stateDir);
    const digest = String(memo?.passwordDigest);
    expect(digest).toMatch(/^[0-9a-f]{16}:[0-9a-f]{64}$/);
    expect(Object.keys(outputs).sort()).toEqual(['name', 'oid']);
    const status = await p.run(['status', '--format', 'json'], first);
    expect(status.code).toBe(0);
    for (const shown of [status.stdout, JSON.stringify(outputs)]) {
      expect(shown).not.toContain('passwordDigest');
      expect(shown).not.toContain(digest.split(':')[1]);
      expect(shown).not.toMatch(/[0-9a-f]{64}/);
      expect(shown).not.toContain(first);
    }
  }, 60_000);

  it('a repair of another field keeps the tracking: the next process finds the password up to date', async () => {
    await server.sql(`ALTER ROLE ${s.role} NOLOGIN`);
    const repair = await p.run(['apply'], first);
    expect(repair.code, repair.stdout + repair.stderr).toBe(0);
    expect(repair.stdout).toContain('1 updated');
    const plan = await p.run(['plan'], first);
    expect(plan.code, plan.stdout).toBe(0);
  }, 60_000);

  it('a rotated secret is an update (not drift), and apply sets the new password', async () => {
    const rotated = `rotated-${s.role}-Secret`;
    const plan = await p.run(['plan'], rotated);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/password/);
    expect((await p.run(['apply'], rotated)).code).toBe(0);
    expect(await loginWorks(server, s.role, rotated)).toBe(true);
    expect((await p.run(['plan'], rotated)).code).toBe(0);
    // Put back for the next case.
    expect((await p.run(['apply'], first)).code).toBe(0);
    expect((await p.run(['apply'], first)).code).toBe(0);
  }, 60_000);

  it('a record an earlier release wrote (digest in outputs) is understood once and moved to the memo: no password set', async () => {
    const before = record(p.stateDir);
    const digest = String(before.memo?.passwordDigest);
    asOldRelease(p.stateDir, digest);
    // Not understood, the digest would leave the password unknown where the verifier is not
    // readable (plan: drift, set once more), and a fresh digest (a new salt) in the memo.
    const plan = await p.run(['plan'], first);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    const apply = await p.run(['apply'], first);
    expect(apply.code).toBe(0);
    const after = record(p.stateDir);
    expect(after.outputs).not.toHaveProperty('passwordDigest');
    expect(after.memo).toEqual({ passwordDigest: digest });
  }, 60_000);

  it('an earlier release\'s record and a repair of another field in the same apply: the digest is carried over, no password set', async () => {
    const digest = String(record(p.stateDir).memo?.passwordDigest);
    asOldRelease(p.stateDir, digest);
    await server.sql(`ALTER ROLE ${s.role} NOLOGIN`);
    const repair = await p.run(['apply'], first);
    expect(repair.code, repair.stdout + repair.stderr).toBe(0);
    expect(repair.stdout).toContain('1 updated');
    // The update is handed the memo its pass's observation moved the digest to, and returns it.
    const after = record(p.stateDir);
    expect(after.outputs).not.toHaveProperty('passwordDigest');
    expect(after.memo).toEqual({ passwordDigest: digest });
    expect((await p.run(['plan'], first)).code).toBe(0);
  }, 60_000);

  it('the digest is kept in state.db only: the update that set it returned it, and no file of the backend\'s own holds it', async () => {
    const rotated = `again-${s.role}-Secret`;
    const apply = await p.run(['apply'], rotated);
    expect(apply.stdout).toContain('1 updated');
    const digest = String(record(p.stateDir).memo?.passwordDigest);
    expect(digest).toMatch(/^[0-9a-f]{16}:[0-9a-f]{64}$/);
    expect(existsSync(join(p.stateDir, 'postgres'))).toBe(false);
    // The next process is handed that memo: up to date, and the digest unchanged (no new salt, nothing written).
    expect((await p.run(['apply'], rotated)).stdout).toContain('0 created, 0 updated');
    expect(record(p.stateDir).memo).toEqual({ passwordDigest: digest });
    expect(await loginWorks(server, s.role, rotated)).toBe(true);
  }, 60_000);
});

describe('a create whose password secret cannot be read here', () => {
  it('plan names the secret and why under the create (text and JSON), says apply would fail, and exits 2; apply fails on the same reason', async () => {
    const p = project({ ...setups[0]!, role: 'svc_unread' });
    const plan = await p.run(['plan'], undefined);
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('  + svc (postgres.role via pg)');
    expect(plan.stdout).toContain('      warning: secret env:SVC_PW cannot be read here (secret environment variable SVC_PW is not set): the create would fail');
    expect(plan.stdout).toContain('1 create(s) need secrets that cannot be read here: apply would fail on them.');
    const json = JSON.parse((await p.run(['plan', '--format', 'json'], undefined)).stdout) as { entries: { id: string; unreadableSecrets?: unknown }[] };
    expect(json.entries.find((e) => e.id === 'svc')?.unreadableSecrets).toEqual([{ ref: 'env:SVC_PW', reason: 'secret environment variable SVC_PW is not set' }]);

    const apply = await p.run(['apply', '--yes'], undefined);
    expect(apply.code).toBe(1);
    expect(apply.stdout).toContain('secret environment variable SVC_PW is not set');

    // Provided, the plan is a plain create again, and the value is printed nowhere.
    const provided = await p.run(['plan'], 'provided-Secret-9');
    expect(provided.code).toBe(2);
    expect(provided.stdout).not.toContain('cannot be read here');
    expect(provided.stdout + provided.stderr).not.toContain('provided-Secret-9');
  }, 60_000);
});
