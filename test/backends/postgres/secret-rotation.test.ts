import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempProject } from '../../support/cli.ts';
import type { CliResult } from '../../support/cli.ts';
import { eventually, trackDaemons } from '../../support/daemon.ts';
import { loginWorks, postgresBackendDoc, startTestPostgres } from '../../support/postgres.ts';
import type { TestPostgres } from '../../support/postgres.ts';

/*
 * A rotated secret is a change of the desired state, not drift: the
 * password the goal names changed, the role did not. It is applied as a
 * goal change is (also under `selfHeal: false`), shown by `plan` as an
 * update, and leaves no `drift detected` line, no drift report and no flap.
 * A password changed by hand while the secret stayed the same is drift, and
 * stays reported (and corrected under selfHeal). Through the real CLI and
 * daemon against a real server; the secret is a file, so that a running
 * daemon sees it rotate.
 */

let server: TestPostgres;
const daemons = trackDaemons();

beforeAll(async () => {
  server = await startTestPostgres();
}, 120_000);

afterAll(async () => {
  await server?.destroy();
});

interface Project {
  readonly args: string[];
  readonly dir: string;
  run(args: string[]): Promise<CliResult>;
  rotate(secret: string): void;
}

function project(role: string, selfHeal: boolean, secret: string): Project {
  const p = tempProject('ds-pg-rot-');
  const secretFile = join(p.dir, 'svc.pw');
  writeFileSync(secretFile, secret);
  p.write(
    'pg.yaml',
    `${postgresBackendDoc(server, server.user)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  selfHeal: ${selfHeal}
  defaults: { backend: pg }
  nodes:
    - id: svc
      type: postgres.role
      spec: { name: ${role}, login: true, password: { fromFile: ${JSON.stringify(secretFile)} } }
`,
  );
  return {
    args: p.args,
    dir: p.dir,
    run: (args) => cli([...args, ...p.args], { env: { PG_ADMIN_PW: server.password } }),
    rotate: (s) => writeFileSync(secretFile, s),
  };
}


async function driftReports(p: Project): Promise<{ node: string; action: string; flapping: boolean; diffs: { path: string }[] }[]> {
  const r = await p.run(['drift', '--format', 'json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { reports: { node: string; action: string; flapping: boolean; diffs: { path: string }[] }[] }).reports;
}

const cases = [
  { name: 'selfHeal: false', selfHeal: false, role: 'rot_report_only' },
  { name: 'selfHeal: true', selfHeal: true, role: 'rot_self_heal' },
];

describe.each(cases)('a rotated secret under $name, one-shot apply and plan', ({ selfHeal, role }) => {
  const first = `first-${role}-Secret`;
  let p: Project;
  beforeAll(async () => {
    p = project(role, selfHeal, first);
    const apply = await p.run(['apply']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
  }, 60_000);

  it('plan shows an update of the password, masked; apply sets it without a drift report', async () => {
    const rotated = `rotated-${role}-Secret`;
    p.rotate(rotated);
    const plan = await p.run(['plan']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(/^ {2}~ svc \(postgres\.role via pg\)$/m);
    expect(plan.stdout).toContain('password: "<secret>" → "<secret>" (secret, rotated)');
    expect(plan.stdout).toContain('1 to update, 0 to delete, 0 drifted');
    for (const out of [plan.stdout, plan.stderr]) expect(out).not.toContain(rotated);

    const apply = await p.run(['apply', '--log-level', 'info']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('1 updated');
    expect(apply.stderr).not.toContain('drift detected');
    expect(apply.stderr).toContain('secret rotated; applying');
    for (const out of [apply.stdout, apply.stderr]) {
      expect(out).not.toContain(rotated);
      expect(out).not.toContain(first);
    }
    expect(await loginWorks(server, role, rotated)).toBe(true);
    expect(await loginWorks(server, role, first)).toBe(false);
    expect(await driftReports(p)).toEqual([]);
    expect((await p.run(['plan'])).code).toBe(0);
  }, 60_000);

  it('a password set by hand with the secret unchanged is still drift: reported, and corrected only under selfHeal', async () => {
    const current = `rotated-${role}-Secret`;
    await server.sql(`ALTER ROLE ${role} PASSWORD 'set-by-hand'`);
    const plan = await p.run(['plan']);
    expect(plan.stdout).toMatch(/^ {2}! svc \(postgres\.role via pg\) drifted/m);
    expect(plan.stdout).not.toContain('rotated)');
    const apply = await p.run(['apply', '--log-level', 'info']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stderr).toContain('drift detected');
    expect(apply.stderr).not.toContain('secret rotated');
    const reports = await driftReports(p);
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ node: 'svc', action: selfHeal ? 'corrected' : 'reported', diffs: [{ path: 'password' }] });
    expect(await loginWorks(server, role, current)).toBe(selfHeal);
    expect(await loginWorks(server, role, 'set-by-hand')).toBe(!selfHeal);
  }, 60_000);

  it('a rotation after that drift is applied: the digest of the password last set is kept while the drift is only reported', async () => {
    const again = `again-${role}-Secret`;
    p.rotate(again);
    const before = (await driftReports(p)).length;
    const apply = await p.run(['apply']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('1 updated');
    expect(apply.stderr).not.toContain('drift detected');
    expect(await loginWorks(server, role, again)).toBe(true);
    const reports = await driftReports(p);
    expect(reports).toHaveLength(before);
    // The rotation was a goal change applied over the drift, not its correction: reported only, under selfHeal: false.
    expect(reports.at(-1)?.action).toBe(selfHeal ? 'corrected' : 'reported');
    expect((await p.run(['plan'])).code).toBe(0);
  }, 60_000);
});

describe('the daemon under selfHeal: false', () => {
  it('applies several rotations in a row: no drift report, no drift line, never flapping', async () => {
    const role = 'rot_daemon';
    const p = project(role, false, 'daemon-0-Secret');
    const d = daemons.start([...p.args, '--interval', '500ms', '--listen', '127.0.0.1:0'], { cwd: p.dir, env: { PG_ADMIN_PW: server.password } });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'svc', 30_000);
    for (let i = 1; i <= 4; i++) {
      const secret = `daemon-${i}-Secret`;
      const from = d.lines.length;
      p.rotate(secret);
      await d.waitFor((l) => l.msg === 'secret rotated; applying' && l.node === 'svc', 15_000, from);
      await d.waitFor((l) => l.msg === 'node updated' && l.node === 'svc', 15_000, from);
      expect(await loginWorks(server, role, secret)).toBe(true);
    }
    expect(d.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
    expect(d.stderr).not.toMatch(/daemon-\d-Secret/);

    // A password set by hand is drift: reported once, not corrected (selfHeal: false), not a flap.
    await server.sql(`ALTER ROLE ${role} PASSWORD 'set-by-hand'`);
    const line = await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'svc', 15_000);
    expect(line).toMatchObject({ action: 'reported', flapping: false, diffs: [{ path: 'password', masked: true }] });
    // Then rotated: applied all the same.
    const from = d.lines.length;
    p.rotate('daemon-5-Secret');
    await d.waitFor((l) => l.msg === 'node updated' && l.node === 'svc', 15_000, from);
    expect(await loginWorks(server, role, 'daemon-5-Secret')).toBe(true);
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    const reports = await driftReports(p);
    expect(reports.map((r) => [r.action, r.flapping])).toEqual([['reported', false]]);
  }, 120_000);
});

describe('the daemon under selfHeal: true', () => {
  it('rotations in quick succession are never drift nor flaps; a hand-set password is corrected', async () => {
    const role = 'rot_daemon_heal';
    const p = project(role, true, 'heal-0-Secret');
    const d = daemons.start([...p.args, '--interval', '500ms', '--listen', '127.0.0.1:0'], { cwd: p.dir, env: { PG_ADMIN_PW: server.password } });
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'svc', 30_000);
    for (let i = 1; i <= 4; i++) {
      const from = d.lines.length;
      p.rotate(`heal-${i}-Secret`);
      await d.waitFor((l) => l.msg === 'node updated' && l.node === 'svc', 15_000, from);
    }
    expect(d.lines.filter((l) => l.msg === 'drift detected')).toEqual([]);
    await server.sql(`ALTER ROLE ${role} PASSWORD 'set-by-hand'`);
    const line = await d.waitFor((l) => l.msg === 'drift detected' && l.node === 'svc', 15_000);
    expect(line).toMatchObject({ action: 'corrected', flapping: false });
    await eventually(() => loginWorks(server, role, 'heal-4-Secret'), 15_000, 'the hand-set password corrected');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);
    expect((await driftReports(p)).map((r) => [r.action, r.flapping])).toEqual([['corrected', false]]);
  }, 120_000);
});

describe('the secret of an existing role cannot be read', () => {
  it('plan and apply fail on the node, naming it and the reference; nothing changes; with the secret back, in sync', async () => {
    const role = 'rot_unreadable';
    const p = project(role, true, 'unreadable-0-Secret');
    expect((await p.run(['apply'])).code).toBe(0);
    const file = join(p.dir, 'svc.pw');
    rmSync(file);
    // Another field drifted too: a failed observation corrects nothing of the node.
    await server.sql(`ALTER ROLE ${role} NOLOGIN`);
    const plan = await p.run(['plan']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(1);
    expect(plan.stdout).toMatch(/svc \(postgres\.role via pg\)/);
    expect(plan.stdout).toContain(`secret file ${file} cannot be read`);
    expect(plan.stdout).not.toMatch(/0 errors/);
    const apply = await p.run(['apply']);
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    expect(apply.stdout + apply.stderr).toContain(`secret file ${file} cannot be read`);
    expect(await server.sql(`SELECT rolcanlogin FROM pg_roles WHERE rolname = '${role}'`)).toEqual([{ rolcanlogin: false }]);

    p.rotate('unreadable-0-Secret');
    const after = await p.run(['plan']);
    expect(after.code, after.stdout).toBe(2);
    expect(after.stdout).toContain('login: false → true');
    expect(after.stdout).not.toContain('password');
    expect((await p.run(['apply'])).code).toBe(0);
    expect(await loginWorks(server, role, 'unreadable-0-Secret')).toBe(true);
  }, 60_000);
});
