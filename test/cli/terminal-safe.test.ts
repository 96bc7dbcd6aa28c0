import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

/**
 * What a wrapped program prints (an exec command's stderr becomes a fault
 * message) reaches the terminal through `apply` and `status`. Escape
 * sequences and carriage returns in it must arrive as visible text, never
 * as control codes that recolour, retitle or overwrite what the operator
 * reads.
 */
const p = tempProject('ds-terminal-safe-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

p.write(
  'goals.yaml',
  `${execGoalHead()}    - id: noisy
      type: generic.resource
      spec:
        commands:
          read: [/bin/sh, -c, 'printf "\\033[31mred\\033[0m \\033]0;title\\007 all fine\\rEVIL \\342\\200\\256txt\\n" >&2; exit 1']
          create: ["true"]
`,
);

describe('control characters from a wrapped program', () => {
  it.each([['apply', '--yes'], ['status']])('are shown escaped by %s', async (...args) => {
    const r = await cli([...args, ...p.args], { env: { DESIREDSTATE_LOG_LEVEL: 'silent' } });
    expect(r.stdout).toContain('noisy');
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/);
    expect(r.stdout).toContain('\\u001b[31mred\\u001b[0m \\u001b]0;title\\u0007 all fine\\rEVIL \\u202etxt');
  });

  it('keep --format json valid JSON with the same text', async () => {
    const r = await cli(['status', '--format', 'json', ...p.args], { env: { DESIREDSTATE_LOG_LEVEL: 'silent' } });
    // eslint-disable-next-line no-control-regex
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/);
    const nodes = (JSON.parse(r.stdout) as { nodes: { id: string; reason: string }[] }).nodes;
    expect(nodes[0]!.reason).toBe('\u001b[31mred\u001b[0m \u001b]0;title\u0007 all fine\rEVIL \u202etxt');
  });
});

/**
 * What was typed (a node id, a directory) quoted into a reason: a bad invocation gets a one-line reason
 * (CLI.md), and no escape sequence reaches the terminal. `retry` and `drift` of a node the state does not
 * know, and a DS_ error naming a state directory, printed them raw.
 */
describe('an argument quoted into a message', () => {
  const typed = 'a\u001b[31mb\nc';
  const shown = 'a\\u001b[31mb\\nc';

  it('retry of an unknown node: one line, escaped', async () => {
    const r = await cli(['retry', typed, ...p.args]);
    expect(r).toMatchObject({ code: 1, stderr: `unknown node "${shown}"\n` });
  });

  it('drift of an unknown node: one line, escaped', async () => {
    const r = await cli(['drift', '--node', typed, ...p.args]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`no drift recorded for ${shown}, which the state has no node of\n`);
  });

  it("a goal file's diagnostic on stderr, under a goal directory named so: escaped", async () => {
    const goals = join(p.dir, 'goals\u001b[31m');
    mkdirSync(goals);
    writeFileSync(join(goals, 'a.yaml'), 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: x }\nspec: { nodes: [ { id: a, type: nope } ] }\n');
    const r = await cli(['plan', '--goals', goals, '--state', p.state]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${join(p.dir, 'goals\\u001b[31m')}/a.yaml:4:`);
    // eslint-disable-next-line no-control-regex
    expect(r.stderr).not.toMatch(/\u001b/);
  });

  it('a DS_ error naming a state directory: one line, escaped', async () => {
    const state = join(p.dir, typed);
    mkdirSync(state);
    writeFileSync(join(state, 'state.db'), 'not a database\n');
    const r = await cli(['status', '--state', state]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^desiredstate status: DS_STATE_STORE: [^\n]*\n$/);
    expect(r.stderr).toContain(join(p.dir, shown));
  });
});
