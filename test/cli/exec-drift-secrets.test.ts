import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, goalHead, planBoth, shellResource, tempProject } from '../support/cli.ts';
import type { CliResult } from '../support/cli.ts';
import { warnSkipped } from '../support/skip.ts';

// A password written by hand into what an exec or script resource manages (a file the script backend's
// `file` template writes): its read reports the text as a state value, and the drift, shown by plan,
// logged and stored, showed it in clear where a local.file's line diff masks it.
const hasJq = spawnSync('jq', ['--version']).status === 0;
if (!hasJq) warnSkipped(['SKIPPING the script drift secrets test: jq is not on PATH (install jq to run it).']);

const SECRET = 'hunter2-very-secret';

/** `plan` in text and JSON: each shows the drift of `path` masked, the other side as it is, and never the secret. */
async function expectPlanMasked(args: readonly string[], path: string, desired: string): Promise<void> {
  const plan = await planBoth(args);
  expect(plan.code).toBe(2);
  expect(plan.text).toContain(`${path}: "DB_PASSWORD=<secret>\\n" → ${JSON.stringify(desired)}`);
  expect(plan.json.entries[0]!.planned.diffs).toEqual([{ path, desired, actual: 'DB_PASSWORD=<secret>\n' }]);
  expect(plan.text + JSON.stringify(plan.json)).not.toContain(SECRET);
}

/**
 * An apply that corrects the drift: its `drift detected` line masked; the drift report stored masked.
 * `shown`: how the masked value reads in both.
 */
async function expectCorrectedMasked(args: readonly string[], cwd: string, env?: NodeJS.ProcessEnv, shown: string | RegExp = 'DB_PASSWORD=<secret>'): Promise<void> {
  const apply: CliResult = await cli(['apply', '--yes', ...args], { cwd, env });
  expect(apply.code, apply.stderr).toBe(0);
  expect(apply.stderr).toMatch(/"msg":"drift detected"/);
  expect(apply.stderr).toMatch(shown);
  expect(apply.stdout + apply.stderr).not.toContain(SECRET);
  const stored = (await cli(['drift', '--format', 'json', ...args], { cwd })).stdout;
  expect(stored).toMatch(shown);
  expect(stored).not.toContain(SECRET);
}

describe.skipIf(!hasJq)('a secret a hand edit writes into a script-managed file', () => {
  it('is masked in plan, the drift log line and the stored report, and the file is still corrected', async () => {
    const p = tempProject('ds-script-drift-secrets-');
    p.write(
      'app.yaml',
      `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: scripts }
spec: { type: script, config: { root: ${JSON.stringify(p.root)} } }
---
${goalHead('  defaults: { backend: scripts }\n')}    - id: motd
      type: generic.resource
      spec:
        input: { path: etc/motd, content: "hello\\n" }
`,
    );
    const env = { HOME: p.dir, USER: 'ana' };
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env })).code).toBe(1);
    const hash = (JSON.parse((await cli(['scripts', 'list', '--format', 'json', ...p.args], { cwd: p.dir, env })).stdout) as { scripts: { hash: string }[] }).scripts[0]!.hash;
    expect((await cli(['scripts', 'approve', hash, ...p.args], { cwd: p.dir, env })).code).toBe(0);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir, env })).code).toBe(0);
    const motd = join(p.root, 'etc/motd');

    writeFileSync(motd, `DB_PASSWORD=${SECRET}\n`);
    await expectPlanMasked(p.args, 'input.content', 'hello\n');
    await expectCorrectedMasked(p.args, p.dir, env);
    // Compared as read: the drift was corrected, not hidden.
    expect(readFileSync(motd, 'utf8')).toBe('hello\n');

    // Text with no secret in it is shown as it is.
    writeFileSync(motd, 'greeting=hi there\n');
    const plan = await cli(['plan', ...p.args], { cwd: p.dir, env });
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('input.content: "greeting=hi there\\n" → "hello\\n"');
  }, 60_000);
});

describe('a secret a hand edit writes into a value an exec read reports', () => {
  it('is masked in plan, the drift log line and the stored report, and the value is still corrected', async () => {
    const p = tempProject('ds-exec-drift-secrets-');
    const state = join(p.dir, 'app.json');
    const script = shellResource(
      p.dir,
      `cat > /dev/null
case "$1" in
  read) if [ -f "$dir/app.json" ]; then printf '{"exists":true,"state":%s}' "$(cat "$dir/app.json")"; else echo '{"exists":false}'; fi ;;
  create|update) printf '{"env":"hello\\\\n"}' > "$dir/app.json"; echo '{"outputs":{}}' ;;
esac
`,
    );
    p.write(
      'goals.yaml',
      `${execGoalHead()}    - id: app
      type: generic.resource
      spec: { commands: { read: [${script}, read], create: [${script}, create], update: [${script}, update] }, input: { env: "hello\\n" } }
`,
    );
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);

    writeFileSync(state, JSON.stringify({ env: `DB_PASSWORD=${SECRET}\n` }));
    await expectPlanMasked(p.args, 'input.env', 'hello\n');
    await expectCorrectedMasked(p.args, p.dir);
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual({ env: 'hello\n' });

    // Text with no secret in it is shown as it is.
    writeFileSync(state, JSON.stringify({ env: 'greeting=hi there\n' }));
    const plan = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain('input.env: "greeting=hi there\\n" → "hello\\n"');
  }, 60_000);
});

/**
 * A project of one exec resource whose input is `applied`, which create and update write to the state
 * file `state` and read reports, applied once: a hand edit of `state` is then drift.
 */
async function appliedStateProject(prefix: string, applied: Readonly<Record<string, unknown>>): Promise<{ p: ReturnType<typeof tempProject>; state: string }> {
  const p = tempProject(prefix);
  const state = join(p.dir, 'app.json');
  const script = shellResource(
    p.dir,
    `cat > /dev/null
case "$1" in
  read) printf '{"exists":true,"state":%s}' "$(cat "$dir/app.json")" ;;
  create|update) printf '%s' '${JSON.stringify(applied)}' > "$dir/app.json"; echo '{"outputs":{}}' ;;
esac
`,
  );
  writeFileSync(state, '{}');
  p.write(
    'goals.yaml',
    `${execGoalHead()}    - id: app
      type: generic.resource
      spec: { commands: { read: [${script}, read], create: [${script}, create], update: [${script}, update] }, input: ${JSON.stringify(applied)} }
`,
  );
  expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
  return { p, state };
}

describe('a secret a hand edit writes into a value an exec read reports under a key that says secret', () => {
  it('is masked by its key, at any depth, in plan, the drift log line and the stored report, and the value is still corrected', async () => {
    const applied = { db_password: 'fromgoal', db: { user: 'app', password: 'fromgoal' } };
    const { p, state } = await appliedStateProject('ds-exec-drift-secret-keys-', applied);

    writeFileSync(state, JSON.stringify({ db_password: SECRET, db: { user: 'app', password: SECRET } }));
    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('input.db_password: "<secret>" → "<secret>"');
    expect(plan.text).toContain('input.db: {"user":"app","password":"<secret>"} → {"user":"app","password":"<secret>"}');
    const masked = { db_password: '<secret>', db: { user: 'app', password: '<secret>' } };
    expect(plan.json.entries[0]!.planned.diffs).toEqual([
      { path: 'input.db_password', desired: '<secret>', actual: '<secret>' },
      { path: 'input.db', desired: masked.db, actual: masked.db },
    ]);
    expect(plan.text + JSON.stringify(plan.json)).not.toContain(SECRET);
    await expectCorrectedMasked(p.args, p.dir, undefined, /"input\.db_password",\s*"desired": ?"<secret>",\s*"actual": ?"<secret>".*"password": ?"<secret>"/s);
    // Compared as read: the drift was corrected, not hidden.
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual(applied);

    // A value under another key is shown as it is.
    writeFileSync(state, JSON.stringify({ ...applied, db: { user: 'ops', password: 'fromgoal' } }));
    const shown = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(shown.code).toBe(2);
    expect(shown.stdout).toContain('input.db: {"user":"ops","password":"<secret>"} → {"user":"app","password":"<secret>"}');
  }, 60_000);
});

describe('a secret a hand edit writes into a map an exec read reports under a key that says secret', () => {
  it('is masked under every key of the map (tokens: {github: …}) in plan, the drift log line and the stored report, and the value is still corrected', async () => {
    const applied = { tokens: { github: 'fromgoal' } };
    const { p, state } = await appliedStateProject('ds-exec-drift-secret-map-', applied);

    writeFileSync(state, JSON.stringify({ tokens: { github: SECRET } }));
    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('input.tokens: {"github":"<secret>"} → {"github":"<secret>"}');
    expect(plan.json.entries[0]!.planned.diffs).toEqual([{ path: 'input.tokens', desired: { github: '<secret>' }, actual: { github: '<secret>' } }]);
    expect(plan.text + JSON.stringify(plan.json)).not.toContain(SECRET);
    await expectCorrectedMasked(p.args, p.dir, undefined, /"input\.tokens",\s*"desired": ?\{\s*"github": ?"<secret>"\s*\},\s*"actual": ?\{\s*"github": ?"<secret>"/);
    // Compared as read: the drift was corrected, not hidden.
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual(applied);
  }, 60_000);
});

describe('a password a failing command prints to stderr', () => {
  it('is masked in the apply output, the create failed log line and status (the stored fault), the rest of the message kept', async () => {
    const p = tempProject('ds-exec-fault-secrets-');
    const script = shellResource(
      p.dir,
      `cat > /dev/null
case "$1" in
  read) echo '{"exists":false}' ;;
  create) echo "connect failed: postgres://app:${SECRET}@db/x" >&2; echo "DB_PASSWORD=${SECRET}-2" >&2; exit 1 ;;
esac
`,
    );
    p.write(
      'goals.yaml',
      `${execGoalHead()}    - id: app
      type: generic.resource
      spec: { commands: { read: [${script}, read], create: [${script}, create] }, input: {} }
`,
    );
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(1);
    expect(apply.stderr).toMatch(/"msg":"create failed"/);
    const status = await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir });
    const app = (JSON.parse(status.stdout) as { nodes: { id: string; reason: string; lastFault: { message: string } }[] }).nodes.find((n) => n.id === 'app')!;
    for (const [shown, text] of [['apply', apply.stdout + apply.stderr], ['status', status.stdout], ['lastFault', app.lastFault.message], ['reason', app.reason]] as const) {
      expect(text, shown).not.toContain(SECRET);
      expect(text, shown).toContain('connect failed: postgres://app:<secret>@db/x');
      expect(text, shown).toContain('DB_PASSWORD=<secret>');
    }
  }, 60_000);
});
