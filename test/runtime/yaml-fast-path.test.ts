/**
 * parseGoalText reads common goal files with a small fast parser and falls
 * back to the `yaml` package for anything else. Whatever path is taken, the
 * result must be the one the full parser gives: same values, same
 * diagnostics, same positions for every key and value, and inside strings.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { defaultLoadLimits, parseGoalText, readsOnFastPath } from '../../src/runtime/index.ts';
import type { PathKey, SourceDocument } from '../../src/runtime/index.ts';

function paths(value: unknown, prefix: PathKey[] = [], out: PathKey[][] = []): PathKey[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

function valueAt(root: unknown, path: readonly PathKey[]): unknown {
  let cur = root;
  for (const p of path) cur = (cur as Record<string, unknown>)[p as string];
  return cur;
}

function view(doc: SourceDocument) {
  const ps = paths(doc.value);
  // Missing children too: positions of absent paths fall back to ancestors.
  const probes = [...ps, ...ps.map((p) => [...p, 'absent']), ...ps.map((p) => [...p, 99])];
  return {
    index: doc.index,
    value: doc.value,
    keys: probes.map((p) => doc.locate(p, 'key')),
    values: probes.map((p) => doc.locate(p, 'value')),
    inside: ps.flatMap((p) => {
      const v = valueAt(doc.value, p);
      if (typeof v !== 'string') return [];
      const idx = [0, v.indexOf('${'), v.indexOf('\n') + 1, v.length >> 1].filter((i) => i >= 0);
      return idx.map((i) => doc.locateIn!(p, i));
    }),
  };
}

function expectSame(text: string): void {
  const fast = parseGoalText('f.yaml', text);
  const full = parseGoalText('f.yaml', text, defaultLoadLimits, { forceFullParser: true });
  expect(fast.diagnostics).toEqual(full.diagnostics);
  expect(fast.documents.map(view)).toEqual(full.documents.map(view));
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? yamlFiles(p) : /\.ya?ml$/.test(e) ? [p] : [];
  });
}

const sample = `# a typical goal file
apiVersion: desiredstate/v1
kind: Goal
metadata:
  name: app-dev
  environment: dev   # free text
  labels: { team: data, cost-center: CC-1234 }
spec:
  selfHeal: true
  defaults:
    backend: local
  nodes:
    - id: app-config-dir
      type: local.directory
      spec: { path: app/config, mode: "0755" }

    - id: app-config
      type: local.file
      dependsOn: [app-config-dir, 'other']
      ignoreFields: []
      spec:
        path: "\${goal.name}/app.toml"
        mode: '0644'
        content: |
          # not a comment: content
          port = 8080

            indented = "\${nodes.app-config-dir.outputs.path}"
        note: |-
          stripped
    - id: list
      type: generic.resource
      spec:
        commands:
          read: [./x, read]
          create:
          - ./x
          - create
        input: { n: 3, b: false, s: it's, e: [], m: {} }
---
apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec: { type: memory, config: { latencyMs: 0 } }
`;

describe('fast path and full parser agree', () => {
  it('on a typical goal file, which the fast path reads', () => {
    expect(readsOnFastPath(sample)).toBe(true);
    expectSame(sample);
  });

  it.each(yamlFiles(join(repoRoot, 'test/fixtures')).map((f) => ({ name: f.slice(repoRoot.length), f })))('on $name', ({ f }) => {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(f));
    } catch {
      return; // the non-UTF-8 fixture never reaches the parser
    }
    expectSame(text);
  });

  const lineEdits = fc.constantFrom(
    '',
    ' ',
    '  ',
    '- ',
    '#',
    'x: 1',
    'x:',
    '---',
    '"',
    "'",
    '|',
    '|-',
    '|+',
    '>',
    '[',
    '{',
    '&a ',
    '*a',
    '!t ',
    'null',
    '~',
    '1.5',
    '0x1F',
    '-1',
    'key: value # c',
    'k: a: b',
    '__proto__: 1',
    'dup: 1',
    '\t',
  );
  it('on mutated goal files (insertions at line starts and ends, deletions, re-indentation)', () => {
    let fastRuns = 0;
    const lines = sample.split('\n');
    fc.assert(
      fc.property(
        fc.array(fc.record({ line: fc.nat(lines.length - 1), edit: lineEdits, where: fc.constantFrom('start', 'end', 'replace', 'delete', 'indent', 'dedent') }), { minLength: 1, maxLength: 4 }),
        (edits) => {
          const ls = [...lines];
          for (const { line, edit, where } of edits) {
            const l = ls[line] ?? '';
            if (where === 'start') ls[line] = edit + l;
            else if (where === 'end') ls[line] = l + edit;
            else if (where === 'replace') ls[line] = l.replace(/\S.*$/, edit);
            else if (where === 'delete') ls.splice(line, 1);
            else if (where === 'indent') ls[line] = `  ${l}`;
            else ls[line] = l.replace(/^ {1,2}/, '');
          }
          const text = ls.join('\n');
          if (readsOnFastPath(text)) fastRuns++;
          expectSame(text);
        },
      ),
      { numRuns: 200 },
    );
    // Both paths must be exercised.
    expect(fastRuns).toBeGreaterThan(4); // about 14 % of mutations stay on the fast path: > 4 of 200 fails about never
    expect(fastRuns).toBeLessThan(200);
  });

  const scalar = fc.oneof(
    fc.string({ maxLength: 12 }),
    fc.constantFrom('0644', '644', '-1', '1e3', 'true', 'True', 'NO', 'null', '', ' a ', 'a: b', 'a #b', '#x', "it's", 'say "hi"', '${goal.name}', 'x\ny\n', 'x\n\n', '\n', 'é ü'),
    fc.integer(),
    fc.boolean(),
  );
  const tree = fc.letrec((tie) => ({
    node: fc.oneof({ depthSize: 'small' }, scalar, tie('list'), tie('map')),
    list: fc.array(tie('node'), { maxLength: 4 }),
    map: fc.dictionary(fc.constantFrom('a', 'b', 'path', 'x-y', 'k.v', 'A_1', 'y', '1', 'on'), tie('node'), { maxKeys: 4 }),
  }));
  it('on arbitrary trees rendered by the yaml package in block and flow styles', () => {
    let fastRuns = 0;
    fc.assert(
      fc.property(tree.map, fc.constantFrom(false, true), fc.integer({ min: 2, max: 4 }), (value, flow, indent) => {
        const text = stringify({ root: value }, { indent, flowCollectionPadding: flow, collectionStyle: flow ? 'flow' : 'any' });
        if (readsOnFastPath(text)) fastRuns++;
        expectSame(text);
      }),
      { numRuns: 300 },
    );
    expect(fastRuns).toBeGreaterThan(30);
  });
});
