import { rmSync } from 'node:fs';
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
