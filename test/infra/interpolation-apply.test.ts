import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, desiredNodeSpec, InfraNodeProvisioner, InfraSpecFactory } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';
import { formatDiagnostic, GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';
import type { CompileResult, OperationContext, Outputs } from '../../src/runtime/index.ts';

const log = pino({ level: 'silent' });
const registry = new BackendRegistry(builtinBackendFactories);

function compile(text: string): CompileResult<InfraDesiredNodeSpec> {
  const parsed = parseGoalText('goals/esc.yaml', text);
  const result = new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(parsed.documents, parsed.diagnostics);
  // The label holding `${` is taken as written (inserted verbatim where `${goal.labels.tpl}` reads it): said so.
  expect(result.diagnostics.map(formatDiagnostic)).toEqual([
    'goals/esc.yaml:5:18: warning not-interpolated: "a${b}c" in a label is taken as written: interpolation and references apply to values in a Goal\'s spec only',
  ]);
  return result;
}

// The audit's goal: `$${` and a label holding `${`, with and without a node reference.
const goalText = `apiVersion: desiredstate/v1
kind: Goal
metadata:
  name: esc
  labels: { tpl: "a\${b}c", esc: "x$\${y}" }
spec:
  nodes:
    - id: a
      type: local.file
      spec: { path: a.txt, content: "label=\${goal.labels.tpl} esc=$\${HOME}" }
    - id: b
      type: local.file
      spec: { path: b.txt, content: "label=\${goal.labels.tpl} esc=$\${HOME} \${nodes.a.outputs.sha256}" }
    - id: c
      type: local.file
      spec: { path: c.txt, content: "l=\${goal.labels.esc}" }
    - id: d
      type: local.file
      spec: { path: d.txt, content: "plain" }
`;

describe('interpolation reaches the file system the same with and without node references', () => {
  let dir: string;
  const files = new Map<string, string>();
  let outputs: Map<string, Outputs>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ds-interp-'));
    const result = compile(goalText);
    const backends = registry.instantiate([{ id: 'local', type: 'local', config: { root: 'root' } }], { cwd: dir, log, stateDir: join(dir, 'state'), env: {} });
    const provisioner = new InfraNodeProvisioner({ backends });
    outputs = new Map();
    const ctx: OperationContext = { signal: new AbortController().signal, log, outputsOf: (id) => outputs.get(id) };
    for (const node of result.graph!.order) {
      const r = await provisioner.create(node, ctx);
      if (r.status !== 'done') throw new Error(`create ${node.id}: ${JSON.stringify(r)}`);
      outputs.set(node.id, r.outputs);
    }
    for (const f of ['a', 'b', 'c', 'd']) files.set(f, await readFile(join(dir, 'root', `${f}.txt`), 'utf8'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    { name: 'an escape and a label, no reference', id: 'a', content: () => 'label=a${b}c esc=${HOME}' },
    { name: 'the same with a node reference', id: 'b', content: () => `label=a\${b}c esc=\${HOME} ${String(outputs.get('a')!.sha256)}` },
    { name: 'a label holding $${, inserted verbatim', id: 'c', content: () => 'l=x$${y}' },
    { name: 'a plain string', id: 'd', content: () => 'plain' },
  ])('$name', ({ id, content }) => {
    expect(files.get(id)).toBe(content());
  });

  it('observes the applied files as up to date (no drift from the escapes)', async () => {
    const result = compile(goalText);
    const backends = registry.instantiate([{ id: 'local', type: 'local', config: { root: 'root' } }], { cwd: dir, log, stateDir: join(dir, 'state'), env: {} });
    const provisioner = new InfraNodeProvisioner({ backends });
    const ctx: OperationContext = { signal: new AbortController().signal, log, outputsOf: (id) => outputs.get(id) };
    const observed = await provisioner.observe(result.graph!.order, ctx);
    expect(Object.fromEntries([...observed].map(([id, o]) => [id, o.status]))).toEqual({ a: 'upToDate', b: 'upToDate', c: 'upToDate', d: 'upToDate' });
  });
});

describe('spec digests of escaped strings', () => {
  it('are the same at every compile', () => {
    const one = compile(goalText).graph!;
    const two = compile(goalText).graph!;
    for (const id of ['a', 'b', 'c', 'd']) expect(two.get(id)!.spec.digest).toBe(one.get(id)!.spec.digest);
  });

  it('are those of the stored template, as before the fix (no re-apply after an upgrade)', () => {
    const a = compile(goalText).graph!.get('a')!.spec;
    expect(a.spec).toMatchObject({ content: 'label=a$${b}c esc=$${HOME}' });
    const labels = { tpl: 'a${b}c', esc: 'x$${y}' };
    expect(a.digest).toBe(desiredNodeSpec({ type: 'local.file', path: 'a.txt', content: 'label=a$${b}c esc=$${HOME}', mode: '0644' }, 'local', labels).digest);
  });

  it('are equal for a label value and the same text written with $${', () => {
    const viaLabel = compile(goalText).graph!.get('a')!.spec;
    const written = compile(goalText.replace('"label=${goal.labels.tpl} esc=$${HOME}"', () => '"label=a$${b}c esc=$${HOME}"')).graph!.get('a')!.spec;
    expect(written.digest).toBe(viaLabel.digest);
  });
});
