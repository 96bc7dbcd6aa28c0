import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, localBackend, tempProject } from '../support/cli.ts';

// `history RUN`: which nodes a run created, updated and deleted, with the outcome of each.
const p = tempProject('ds-history-run-');
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const goal = (files: Record<string, string>): string => `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: local }
  prune: true
  nodes:
${Object.entries(files)
  .map(([id, content]) => `    - { id: ${id}, type: local.file, deletionPolicy: Delete, spec: { path: ${id}.txt, content: "${content}" } }`)
  .join('\n')}
`;

interface Detail {
  run: { id: number; trigger: string } | null;
  operations: { node: string; op: string; outcome: string | null }[];
  total: number;
}

describe('history RUN', () => {
  it('lists what each run did to which node, in order; an unknown run says so; a bad run number is a bad invocation', async () => {
    p.write('app.yaml', goal({ a: 'a', b: 'b', c: 'c' }));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);
    p.write('app.yaml', goal({ a: 'a2', b: 'b' }));
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(0);

    const detail = async (...args: string[]): Promise<Detail> => JSON.parse((await cli(['history', ...args, '--format', 'json', ...p.args])).stdout) as Detail;
    const first = await detail('1');
    expect(first.run).toMatchObject({ id: 1, trigger: 'apply' });
    expect(first.operations.map((o) => `${o.op} ${o.node} ${o.outcome}`).sort()).toEqual(['create a done', 'create b done', 'create c done']);
    expect(first.total).toBe(3);
    const second = await detail('2');
    expect(second.operations.map((o) => `${o.op} ${o.node} ${o.outcome}`).sort()).toEqual(['delete c done', 'update a done']);

    const limited = await detail('1', '--limit', '2');
    expect(limited).toMatchObject({ total: 3 });
    expect(limited.operations).toHaveLength(2);
    const text = await cli(['history', '1', '--limit', '2', ...p.args]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^run 1 {2}\S+ {2}apply {2}commit - {2}\+3 ~0 -0 !0 x0 ⊘0\n/);
    expect(text.stdout).toMatch(/STARTED +OP +NODE +OUTCOME/);
    expect(text.stdout).toContain('… and 1 more (--limit 3 shows them all)');

    expect(await detail('99')).toEqual({ run: null, operations: [], total: 0 });
    expect(await cli(['history', '99', ...p.args])).toMatchObject({ code: 0, stdout: 'no run 99 recorded (desiredstate history lists the runs kept)\n' });
    for (const bad of ['0', 'x', '-1', '1.5']) {
      const r = await cli(['history', bad, ...p.args]);
      expect(r.code, bad).toBe(64);
    }
    expect(await cli(['history', '1', '2', ...p.args])).toMatchObject({ code: 64 });
  });
});
