import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry, InfraSpecFactory } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec } from '../../src/infra/index.ts';
import { GoalCompiler, parseGoalText } from '../../src/runtime/index.ts';
import type { CompileResult } from '../../src/runtime/index.ts';

const registry = new BackendRegistry(builtinBackendFactories);

/** Text to result, the way `validate` does it (minus the disk). Any throw fails the property. */
function compileText(texts: readonly string[]): CompileResult<InfraDesiredNodeSpec> {
  const documents = [];
  const diagnostics = [];
  for (const [i, text] of texts.entries()) {
    const parsed = parseGoalText(`goals/f${i}.yaml`, text);
    documents.push(...parsed.documents);
    diagnostics.push(...parsed.diagnostics);
  }
  return new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(documents, diagnostics);
}

/** The compiler's promise: a graph with every node after its dependencies, or at least one error. */
function checkOutcome(r: CompileResult<InfraDesiredNodeSpec>): void {
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (r.graph === undefined) {
    expect(errors.length).toBeGreaterThan(0);
    return;
  }
  expect(errors).toEqual([]);
  const pos = new Map(r.graph.order.map((n, i) => [n.id, i]));
  expect(pos.size).toBe(r.graph.size);
  for (const n of r.graph.order) for (const d of n.dependsOn) expect(pos.get(d.on)!).toBeLessThan(pos.get(n.id)!);
  for (const d of r.diagnostics) {
    expect(d.line).toBeGreaterThanOrEqual(1);
    expect(d.col).toBeGreaterThanOrEqual(1);
  }
}

const yamlish = fc.string({
  unit: fc.constantFrom(...'abc01 :-[]{},\'"#&*!|>%@`?<\n\n  \t\\$'.split(''), '---\n', 'apiVersion: desiredstate/v1\n', 'kind: Goal\n', '  - id: a\n', '${nodes.a.outputs.x}', '\uFFFD', '\u0000'),
  maxLength: 300,
});

/** Mostly the valid value, sometimes one of the mistakes. */
function mostly<T>(valid: T, ...mistakes: T[]): fc.Arbitrary<T> {
  return fc.oneof({ weight: 12, arbitrary: fc.constant(valid) }, ...mistakes.map((m) => ({ weight: 1, arbitrary: fc.constant(m) })));
}

const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
const depsArb = fc.uniqueArray(fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...ids) }, { weight: 1, arbitrary: fc.constant('ghost') }), { maxLength: 2 });
const fileNode = fc.record({
  type: mostly('local.file', 'local.fil'),
  dependsOn: depsArb,
  spec: fc.record({
    path: mostly<string>('${goal.name}/f', '', '${goal.nmae}'),
    content: mostly<unknown>('x=${nodes.b.outputs.path}', 42, '${nodes.ghost.outputs.x}'),
    mode: mostly<unknown>('0644', 644, 'rwx'),
  }),
});
const dirNode = fc.record({ type: mostly('local.directory', 'local.dir'), dependsOn: depsArb, spec: fc.record({ path: mostly('d', ''), mode: mostly<unknown>('0755', 755) }) });
const roleNode = fc.record({
  type: mostly('postgres.role', 'postgres.rol'),
  backend: mostly('mem', 'nope', 'local'),
  dependsOn: depsArb,
  spec: fc.record({ name: mostly('app_${goal.environment}'), login: mostly<unknown>(true, 'NO'), password: mostly<unknown>({ fromEnv: 'PW' }, 'hunter2') }),
});
const nodesArb = fc
  .uniqueArray(fc.tuple(fc.oneof({ weight: 12, arbitrary: fc.constantFrom(...ids) }, { weight: 1, arbitrary: fc.constant('Bad_Id') }), fc.oneof(fileNode, dirNode, roleNode)), { maxLength: 6, selector: ([id]) => id })
  .map((list) => list.map(([id, node]) => ({ id, ...node })));

const goalDocArb = fc.record({
  apiVersion: mostly('desiredstate/v1', 'v2'),
  kind: mostly('Goal', 'Gaol'),
  metadata: fc.record({ name: fc.constantFrom('app', 'other', 'third'), environment: fc.constantFrom('dev', 'prod'), labels: fc.constant({ team: 'data' }) }),
  spec: fc.record({ nodes: nodesArb }),
});
const backendDoc = stringify({ apiVersion: 'desiredstate/v1', kind: 'Backend', metadata: { name: 'mem' }, spec: { type: 'memory' } });

type Mutation = { kind: 'delete' | 'insert' | 'duplicate-line' | 'swap-lines'; at: number; char: string };
const mutationArb = fc.record({
  kind: fc.constantFrom('delete', 'insert', 'duplicate-line', 'swap-lines') as fc.Arbitrary<Mutation['kind']>,
  at: fc.nat(),
  char: fc.constantFrom(':', '-', ' ', '\n', '[', '{', '&a ', '*a', '!!foo ', '<<: ', '"', '#', '\t', '__proto__: 1\n'),
});

function mutate(text: string, m: Mutation): string {
  const at = text.length === 0 ? 0 : m.at % text.length;
  const lines = text.split('\n');
  const li = lines.length === 0 ? 0 : m.at % lines.length;
  switch (m.kind) {
    case 'delete':
      return text.slice(0, at) + text.slice(at + 1);
    case 'insert':
      return text.slice(0, at) + m.char + text.slice(at);
    case 'duplicate-line':
      lines.splice(li, 0, lines[li] ?? '');
      return lines.join('\n');
    case 'swap-lines': {
      const lj = (li + 1) % lines.length;
      [lines[li], lines[lj]] = [lines[lj]!, lines[li]!];
      return lines.join('\n');
    }
  }
}

describe('the compiler never throws, and yields an acyclic graph or an error', () => {
  it('on arbitrary YAML-ish text', () => {
    fc.assert(
      fc.property(fc.array(yamlish, { minLength: 1, maxLength: 3 }), (texts) => {
        checkOutcome(compileText(texts));
      }),
      { numRuns: 400 },
    );
  });

  it('on goal-like documents, rendered with the yaml package and mutated', () => {
    let graphs = 0;
    fc.assert(
      fc.property(fc.array(goalDocArb, { minLength: 1, maxLength: 2 }), fc.oneof(fc.constant([]), fc.array(mutationArb, { maxLength: 3 })), (docs, mutations) => {
        let text = docs.map((d) => stringify(d)).join('---\n');
        for (const m of mutations) text = mutate(text, m);
        const r = compileText([text, backendDoc]);
        checkOutcome(r);
        if (r.graph !== undefined) graphs++;
      }),
      { numRuns: 300 },
    );
    // The generator must reach the success path too, not only errors.
    expect(graphs).toBeGreaterThan(2); // typically 10-25 of 300: a bound near the mean made this flaky
  });
});

describe('random graphs: compile succeeds iff the graph is acyclic', () => {
  function isAcyclic(n: number, edges: readonly (readonly [number, number])[]): boolean {
    const adj = Array.from({ length: n }, () => [] as number[]);
    for (const [from, to] of edges) adj[from]!.push(to);
    const state = new Array<number>(n).fill(0);
    const visit = (v: number): boolean => {
      if (state[v] === 1) return false;
      if (state[v] === 2) return true;
      state[v] = 1;
      for (const w of adj[v]!) if (!visit(w)) return false;
      state[v] = 2;
      return true;
    };
    return adj.every((_, v) => visit(v));
  }

  const graphArb = fc.integer({ min: 1, max: 12 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      edges: fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1)), { maxLength: n * 2 }).map((es) => es.filter(([a, b]) => a !== b)),
      // Some edges as ${nodes…} references rather than dependsOn, and nodes spread over two files.
      asReference: fc.array(fc.boolean(), { minLength: n * 2, maxLength: n * 2 }),
      dag: fc.boolean(),
    }),
  );

  it('for dependsOn edges and output references, over two files', () => {
    fc.assert(
      fc.property(graphArb, ({ n, edges: raw, asReference, dag }) => {
        // Half the runs keep only forward edges, so that acyclic graphs are common too.
        const edges = dag ? raw.filter(([a, b]) => a > b) : raw;
        const files = [[], []] as string[][];
        for (let v = 0; v < n; v++) {
          const out = edges.map((e, i) => ({ e, i })).filter(({ e }) => e[0] === v);
          const deps = out.filter(({ i }) => !asReference[i]).map(({ e }) => `n${e[1]}`);
          const refs = out.filter(({ i }) => asReference[i]).map(({ e }) => `\${nodes.n${e[1]}.outputs.path}`);
          files[v % 2]!.push(`    - id: n${v}\n      type: local.file\n      dependsOn: [${deps.join(', ')}]\n      spec: { path: n${v}, content: ${JSON.stringify(refs.join(' '))} }\n`);
        }
        const texts = files.map((nodes, i) => `apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: g${i} }\nspec:\n  nodes:\n${nodes.join('')}${nodes.length === 0 ? '    []\n' : ''}`);
        const r = compileText(texts.map((t) => t.replace('  nodes:\n    []\n', '  nodes: []\n')));
        const acyclic = isAcyclic(n, edges);
        expect(r.graph !== undefined).toBe(acyclic);
        if (!acyclic) expect(r.diagnostics.map((d) => d.code)).toContain('dependency-cycle');
        checkOutcome(r);
      }),
      { numRuns: 300 },
    );
  });
});
