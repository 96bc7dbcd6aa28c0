import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { localBackend, repoRoot, tempProject } from '../support/cli.ts';

/**
 * A listing (apply's outcomes, plan, status, drift, history) reaches stdout
 * in one write, not one per line: 10,000 files converged were 10,000 write
 * calls, ~20 ms of a one-shot apply. The text is the same, line for line.
 */
const p = tempProject('ds-output-lines-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));
const files = Array.from({ length: 30 }, (_, i) => `    - { id: f${i}, type: local.file, spec: { path: "f${i}", content: "file ${i}\\n" } }`);
p.write('goals.yaml', [localBackend(p.root), '---', 'apiVersion: desiredstate/v1', 'kind: Goal', 'metadata: { name: files, environment: dev }', 'spec:', '  defaults: { backend: local }', '  nodes:', ...files].join('\n'));

async function run(args: string[]): Promise<{ code: number; writes: string[] }> {
  const writes: string[] = [];
  const code = await main([...args, ...p.args], { out: (t) => writes.push(t), env: { DESIREDSTATE_LOG_LEVEL: 'silent' }, cwd: repoRoot });
  return { code, writes };
}

describe('a listing on stdout', () => {
  it('comes in one write for plan, apply and status, with every line in order', async () => {
    const plan = await run(['plan']);
    expect(plan.code).toBe(2);
    // The creates, each with its fields under it, then the summary.
    expect(plan.writes).toHaveLength(2);
    const creates = plan.writes[0]!.split('\n').filter((l) => l.startsWith('  + '));
    expect(creates).toEqual(Array.from({ length: 30 }, (_, i) => expect.stringMatching(new RegExp(`^  \\+ f${i} \\(local\\.file via local\\)$`))));
    expect(plan.writes[1]).toMatch(/^Plan: 30 to create/);

    const apply = await run(['apply', '--yes']);
    expect(apply.code).toBe(0);
    expect(apply.writes).toHaveLength(2);
    expect(apply.writes[0]!.split('\n')).toEqual(Array.from({ length: 30 }, (_, i) => `  + f${i}: created`));
    expect(apply.writes[1]).toMatch(/^Apply: 30 created/);

    const status = await run(['status']);
    const table = status.writes.find((w) => w.startsWith('NODE'));
    expect(table?.split('\n')).toHaveLength(31);
  });

  it('writes nothing for an empty listing', async () => {
    const apply = await run(['apply', '--yes']);
    expect(apply.code).toBe(0);
    expect(apply.writes).toEqual([expect.stringMatching(/^Apply: 0 created, 0 updated, 0 deleted, 30 unchanged/)]);
  });
});
