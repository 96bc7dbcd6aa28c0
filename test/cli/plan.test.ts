import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, localBackend, tempProject } from '../support/cli.ts';

const goal = (selfHeal: boolean): string => `${localBackend('ROOT')}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  selfHeal: ${selfHeal}
  nodes:
    - id: conf
      type: local.file
      spec: { path: app.conf, content: "port = 8080\\n", mode: "0640" }
`;

const projects: string[] = [];
afterAll(() => {
  for (const d of projects) rmSync(d, { recursive: true, force: true });
});

function project(selfHeal: boolean): ReturnType<typeof tempProject> {
  const p = tempProject('ds-plan-');
  projects.push(p.dir);
  p.write('goals.yaml', goal(selfHeal).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)));
  return p;
}

describe('desiredstate plan', () => {
  it('lists a new resource with its desired fields, as Terraform does; the JSON plan carries them too', async () => {
    const p = project(true);
    const text = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(text.code).toBe(2);
    expect(text.stdout).toContain('  + conf (local.file via local)\n      path = "app.conf"\n      content = "port = 8080\\n"\n      mode = "0640"\n');
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; desired?: unknown }[] };
    expect(json.entries.find((e) => e.id === 'conf')?.desired).toMatchObject({ type: 'local.file', path: 'app.conf', content: 'port = 8080\n', mode: '0640' });
  });

  it('a new file\'s text is listed with what looks like a secret in it masked, as its drift would be, in text and JSON', async () => {
    const p = project(true);
    const content = 'port = 8080\\nDB_PASSWORD=supersecret1\\n-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n';
    p.write('goals.yaml', goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)).replace('"port = 8080\\n"', `"${content}"`));
    const text = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(text.code).toBe(2);
    expect(text.stdout).not.toContain('supersecret1');
    expect(text.stdout).not.toContain('MIIEvQ');
    // Cut short in text (the JSON plan has all of it).
    expect(text.stdout).toContain('content = "port = 8080\\nDB_PASSWORD=<secret>\\n');
    const json = (await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout;
    expect(json).not.toContain('supersecret1');
    expect((JSON.parse(json) as { entries: { id: string; desired?: { content?: string } }[] }).entries.find((e) => e.id === 'conf')?.desired?.content).toBe(
      'port = 8080\nDB_PASSWORD=<secret>\n-----BEGIN PRIVATE KEY-----\n<secret>\n-----END PRIVATE KEY-----\n',
    );
  });

  it('lists a field a policy default set once, on its own line, saying which policy set it', async () => {
    const p = project(true);
    p.write('goals.yaml', goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)).replace(', mode: "0640" }', ' }'));
    p.write('policy.yaml', `apiVersion: desiredstate/v1
kind: Policy
metadata: { name: acme }
spec:
  defaults:
    - types: [local.file]
      set: { mode: "0600" }
`);
    const { code, stdout } = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(code).toBe(2);
    expect(stdout).toContain('  + conf (local.file via local)\n      path = "app.conf"\n      content = "port = 8080\\n"\n      mode = "0600" (set by policy acme)\nPlan:');
    expect(stdout.match(/mode =/g)).toHaveLength(1);
    // GOAL-FORMAT.md: policy defaults are "shown in plans as policy-set"; `--format json` is the plan for machines.
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; policySet?: unknown }[] };
    expect(json.entries.find((e) => e.id === 'conf')?.policySet).toEqual([{ field: 'mode', value: '0600', policy: 'acme' }]);
  });

  it('shows a value as apply writes it: a `$${` escape as the `${` it stands for, in the listing and the JSON plan', async () => {
    const p = project(true);
    p.write('goals.yaml', goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)).replace('"port = 8080\\n"', () => '"cost $${HOME} ok"'));
    const text = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(text.code, text.stderr).toBe(2);
    expect(text.stdout).toContain('      content = "cost ${HOME} ok"\n');
    expect(text.stdout).not.toContain('$$');
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; desired?: { content?: string } }[] };
    expect(json.entries.find((e) => e.id === 'conf')?.desired?.content).toBe('cost ${HOME} ok');
    // What apply writes is what the plan showed.
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('cost ${HOME} ok');
  });

  it('cuts a long value that is no string (an exec node\'s input) in the listing as it cuts a file\'s text; the JSON plan has it whole', async () => {
    const p = tempProject('ds-plan-long-');
    projects.push(p.dir);
    const blob = 'x'.repeat(200_000);
    p.write('goals.yaml', `${execGoalHead()}    - id: big
      type: generic.resource
      spec:
        commands:
          read: [/bin/sh, -c, 'cat > /dev/null; echo "{\\"exists\\":false}"']
          create: [/bin/sh, -c, 'cat > /dev/null; echo "{\\"outputs\\":{}}"']
        input: { blob: ${blob} }
`);
    const text = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(text.code, text.stderr).toBe(2);
    const input = text.stdout.split('\n').find((l) => l.startsWith('      input = '));
    expect(input).toBe(`      input = {"blob":"${'x'.repeat(50)}…`);
    expect(text.stdout.length).toBeLessThan(2000);
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; desired?: { input?: { blob?: string } } }[] };
    expect(json.entries.find((e) => e.id === 'big')?.desired?.input?.blob).toBe(blob);
  });

  it('exits 0 when the only drift is report-only (selfHeal: false): apply has nothing to do, so plan → apply → plan reaches 0', async () => {
    const p = project(false);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
    const drifted = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(drifted.stdout).toContain('! conf (local.file via local) drifted, report only (selfHeal: false)');
    expect(drifted.code).toBe(0);
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(0);
    // The node counts once, as left unchanged; the drift is told apart after (it read "1 unchanged, 1 drift reported").
    expect(apply.stdout).toContain('Apply: 0 created, 0 updated, 0 deleted, 1 unchanged, 0 failed, 0 blocked, 0 held; 1 drifted (1 reported only, left as found).');
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  });

  it('lists a node removed from the goals that apply will forget (exit 2), and apply marks it ○, not ~', async () => {
    const p = project(true);
    const two = goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)) + `    - id: motd
      type: local.file
      spec: { path: motd, content: "hi\\n" }
`;
    p.write('goals.yaml', two);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.write('goals.yaml', goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)));
    // It said nothing of it, and exited 0, while apply went on to forget it.
    const plan = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(plan.stdout).toContain('  ○ motd (local.file via local) removed from the goals: forgotten, its resource left as it is (deleted only under prune: true with deletionPolicy: Delete)');
    expect(plan.stdout).toContain('1 removed from the goals to forget, their resources left as they are.');
    expect(plan.code).toBe(2);
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; planned: { action: string } }[]; counts: { orphan: number } };
    expect(json.entries.find((e) => e.id === 'motd')?.planned).toEqual({ action: 'orphan' });
    expect(json.counts.orphan).toBe(1);
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.stdout).toContain('  ○ motd: orphaned');
    // Forgotten, not unchanged: counted on its own, in the summary and in history.
    expect(apply.stdout).toContain('Apply: 0 created, 0 updated, 0 deleted, 1 forgotten, 1 unchanged,');
    const runs = (JSON.parse((await cli(['history', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { runs: { summary: { unchanged: number; orphaned: number } }[] }).runs;
    expect(runs[0]!.summary).toMatchObject({ unchanged: 1, orphaned: 1 });
    expect((await cli(['history', ...p.args], { cwd: p.dir })).stdout).toMatch(/-0 ○1 !0/);
    expect(readFileSync(join(p.root, 'motd'), 'utf8')).toBe('hi\n');
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  });

  it('a node a policy holds, removed from a goal that prunes with Delete: plan says the hold is why it is not deleted, as apply then forgets it', async () => {
    const p = tempProject('ds-plan-held-removed-');
    projects.push(p.dir);
    p.write('backend.yaml', localBackend(p.root));
    p.write('policy.yaml', 'apiVersion: desiredstate/v1\nkind: Policy\nmetadata: { name: std }\nspec:\n  requiredLabels:\n    - key: team\n      severity: { default: high }\n');
    const keep = '    - { id: keep, type: local.file, labels: { team: a }, spec: { path: keep, content: "k" } }\n';
    const victim = (labels: string): string => `    - { id: victim, type: local.file, deletionPolicy: Delete, labels: { ${labels} }, spec: { path: victim, content: "v" } }\n`;
    const goal = (nodes: string): string => `apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: app }\nspec:\n  prune: true\n  defaults: { backend: local }\n  nodes:\n${nodes}`;
    // Made, then held by the policy (its label gone), then removed from the goals.
    p.write('app.yaml', goal(keep + victim('team: a')));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.write('app.yaml', goal(keep + victim('')));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).stdout).toContain('  ⊘ victim: held: held by policy: required-label:team (high, std)\n');
    p.write('app.yaml', goal(keep));
    const plan = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toContain(
      '  ○ victim (local.file via local) removed from the goals: forgotten, its resource left as it is (not deleted: it is held by policy: required-label:team (high, std), and a node a policy holds is never deleted, not even under prune: true with deletionPolicy: Delete)\n',
    );
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; planned: unknown }[] };
    expect(json.entries.find((e) => e.id === 'victim')?.planned).toEqual({ action: 'orphan', policyHold: 'held by policy: required-label:team (high, std)' });
    // What apply does: forgets it, its file left, nothing deleted.
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.stdout).toContain('  ○ victim: orphaned\n');
    expect(apply.stdout).toContain(' 0 deleted, 1 forgotten,');
    expect(readFileSync(join(p.root, 'victim'), 'utf8')).toBe('v');
  });

  it('goals that hold no nodes over a state that holds some: plan and apply say the nodes are kept, and status says why they are not reconciled', async () => {
    const p = project(true);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    p.write('goals.yaml', goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)).replace(/ {2}nodes:[\s\S]*$/, '  nodes: []\n'));
    const plan = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
    expect(plan.stdout).toContain('Note: the goals hold no nodes: the 1 node(s) in the state are kept as they are, neither deleted nor forgotten (an empty goal set never deletes anything).');
    const apply = await cli(['apply', '--yes', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(0);
    expect(apply.stderr).toContain('the goals hold no nodes');
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBeTruthy();
  });

  // A goal edit of an ignored field was left as found with no word: plan said nothing, apply "unchanged".
  it('says where ignoreFields keeps a goal edit from being applied (exit 0, nothing to do); not the drift of an ignored field, which it silences', async () => {
    const p = project(true);
    const text = (content: string): string => goal(true).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)).replace('"port = 8080\\n"', `"${content}"`).replace('      spec: { path', '      ignoreFields: [content]\n      spec: { path');
    p.write('goals.yaml', text('port = 8080\\n'));
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
    const drift = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(drift.stdout).toBe('Plan: 0 to create, 0 to update, 0 to delete, 0 drifted, 1 unchanged, 0 blocked or held, 0 errors.\n');
    p.write('goals.yaml', text('port = 9090\\n'));
    const edited = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(edited.code).toBe(0);
    expect(edited.stdout).toContain('  = conf (local.file via local) unchanged: ignoreFields leaves content as found, so the goal\'s edit is not applied\n      content: ');
    expect(edited.stdout).toContain('-port = 1\n        +port = 9090\n');
    const json = JSON.parse((await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { entries: { id: string; planned: { action: string; ignored?: { path: string }[] } }[] };
    expect(json.entries.find((e) => e.id === 'conf')?.planned).toMatchObject({ action: 'none', ignored: [{ path: 'content' }] });
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('port = 1\n');
  });

  // An apply under ignoreFields recorded the node as applied at the edited goal: once ignoreFields was
  // dropped, the goal's own edit, never applied, was reported as drift under selfHeal: false and left.
  describe('a goal edit ignoreFields held back, once it is dropped (selfHeal: false)', () => {
    const setup = async (): Promise<{ p: ReturnType<typeof tempProject>; text: (content: string, ignore: boolean) => string }> => {
      const p = project(false);
      const text = (content: string, ignore: boolean): string =>
        goal(false).replace(JSON.stringify('ROOT'), JSON.stringify(p.root)).replace('"port = 8080\\n"', `"${content}"`).replace('      spec: { path', `      ignoreFields: [${ignore ? 'content' : ''}]\n      spec: { path`);
      p.write('goals.yaml', text('port = 8080\\n', true));
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      return { p, text };
    };
    const drift = async (p: ReturnType<typeof tempProject>): Promise<unknown[]> => (JSON.parse((await cli(['drift', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { reports: unknown[] }).reports;

    it('is a goal change: plan shows the update (exit 2), apply writes it, no drift is reported', async () => {
      const { p, text } = await setup();
      p.write('goals.yaml', text('port = 9090\\n', true));
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('port = 8080\n');
      p.write('goals.yaml', text('port = 9090\\n', false));
      const plan = await cli(['plan', ...p.args], { cwd: p.dir });
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      expect(plan.stdout).toContain('  ~ conf (local.file via local)');
      const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
      expect(apply.stdout).toContain('Apply: 0 created, 1 updated, 0 deleted, 0 unchanged, 0 failed, 0 blocked, 0 held.\n');
      expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('port = 9090\n');
      expect(await drift(p)).toEqual([]);
      expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
    });

    it('also where an update of another field was applied beside it', async () => {
      const { p, text } = await setup();
      p.write('goals.yaml', text('port = 9090\\n', true).replace('mode: "0640"', 'mode: "0600"'));
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).stdout).toContain('1 updated');
      p.write('goals.yaml', text('port = 9090\\n', false).replace('mode: "0640"', 'mode: "0600"'));
      expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(2);
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('port = 9090\n');
      expect(await drift(p)).toEqual([]);
    });

    it('a hand edit of the ignored field, the goal unchanged, is still drift: reported, left as it is', async () => {
      const { p, text } = await setup();
      writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      p.write('goals.yaml', text('port = 8080\\n', false));
      const plan = await cli(['plan', ...p.args], { cwd: p.dir });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toContain('! conf (local.file via local) drifted, report only');
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('port = 1\n');
      expect(await drift(p)).toMatchObject([{ action: 'reported' }]);
    });

    it('a goal edit held back, then a hand edit that makes the field as the goal has it: a later hand edit is drift', async () => {
      const { p, text } = await setup();
      p.write('goals.yaml', text('port = 9090\\n', true));
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      writeFileSync(join(p.root, 'app.conf'), 'port = 9090\n');
      expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
      writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
      p.write('goals.yaml', text('port = 9090\\n', false));
      expect((await cli(['plan', ...p.args], { cwd: p.dir })).stdout).toContain('! conf (local.file via local) drifted, report only');
    });

    it('ignoreFields added with a hand edit outstanding silences it', async () => {
      const { p, text } = await setup();
      p.write('goals.yaml', text('port = 8080\\n', false));
      writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
      expect((await cli(['plan', ...p.args], { cwd: p.dir })).stdout).toContain('! conf (local.file via local) drifted, report only');
      p.write('goals.yaml', text('port = 8080\\n', true));
      const plan = await cli(['plan', ...p.args], { cwd: p.dir });
      expect(plan.code).toBe(0);
      expect(plan.stdout).toBe('Plan: 0 to create, 0 to update, 0 to delete, 0 drifted, 1 unchanged, 0 blocked or held, 0 errors.\n');
    });
  });

  it('exits 2 for drift apply will correct', async () => {
    const p = project(true);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
    const drifted = await cli(['plan', ...p.args], { cwd: p.dir });
    expect(drifted.stdout).toContain('! conf (local.file via local) drifted, will be corrected');
    expect(drifted.code).toBe(2);
    const apply = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(apply.stdout).toContain('Apply: 0 created, 1 updated, 0 deleted, 0 unchanged, 0 failed, 0 blocked, 0 held; 1 drifted.');
  });

  it('an empty goal directory is an error naming the directory, with no made-up line and column', async () => {
    const p = tempProject('ds-plan-empty-');
    projects.push(p.dir);
    for (const command of ['validate', 'plan']) {
      const r = await cli([command, ...p.args], { cwd: p.dir });
      expect(r.code).toBe(1);
      expect(`${r.stdout}${r.stderr}`).toContain('goals: error no-goals: the goal directory holds no *.yaml or *.yml files');
    }
  });

  it('an empty goal directory that is the working directory is named "."', async () => {
    // `--goals .` printed ": error no-goals", naming nothing.
    const p = tempProject('ds-plan-empty-cwd-');
    projects.push(p.dir);
    const r = await cli(['validate', '--goals', '.'], { cwd: p.goals });
    expect(r.code).toBe(1);
    expect(r.stdout.trim()).toBe('.: error no-goals: the goal directory holds no *.yaml or *.yml files');
  });

  it('a dependent of drift that apply corrects first is planned against the outputs the correction restores, not the drifted ones', async () => {
    const p = tempProject('ds-plan-ref-');
    projects.push(p.dir);
    p.write('goals.yaml', `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
    - id: conf
      type: local.file
      spec: { path: app.conf, content: "port = 8080\\n" }
    - id: stamp
      type: local.file
      spec: { path: app.stamp, content: "conf sha256 \${nodes.conf.outputs.sha256}\\n" }
`);
    expect((await cli(['apply', '--yes', ...p.args], { cwd: p.dir })).code).toBe(0);
    writeFileSync(join(p.root, 'app.conf'), 'port = 1\n');
    const plan = await cli(['plan', '--format', 'json', ...p.args], { cwd: p.dir });
    const planned = Object.fromEntries((JSON.parse(plan.stdout) as { entries: { id: string; planned: { action: string } }[] }).entries.map((e) => [e.id, e.planned.action]));
    expect(planned).toEqual({ conf: 'drift', stamp: 'none' });
    const apply = await cli(['apply', '--yes', '--format', 'json', ...p.args], { cwd: p.dir });
    expect(apply.code).toBe(0);
    expect((await cli(['plan', ...p.args], { cwd: p.dir })).code).toBe(0);
  });
});
