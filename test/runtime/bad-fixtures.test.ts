import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { loadGoalSet } from '../../src/cli/load.ts';
import { BackendRegistry, CelPolicyEngine } from '../../src/infra/index.ts';
import { defaultLoadLimits, formatDiagnostic } from '../../src/runtime/index.ts';

// `validate` runs from the repo root, so paths in expected.txt are relative to it.
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const badDir = join(repoRoot, 'test/fixtures/bad');
const registry = new BackendRegistry(builtinBackendFactories);

const cases = (await readdir(badDir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => ({ name: e.name }));

async function validate(goalsDir: string): Promise<{ lines: string[]; hasGraph: boolean }> {
  // With the policy engine, as `validate` compiles (a Policy document's errors are the engine's to report).
  const { result } = await loadGoalSet({ goalsDir, cwd: repoRoot, registry, policy: new CelPolicyEngine({ blockingDiagnostic: 'error' }) });
  return { lines: result.diagnostics.map(formatDiagnostic), hasGraph: result.graph !== undefined };
}

describe('bad goal fixtures: validate prints exactly expected.txt and builds no graph', () => {
  it('has the corpus', () => {
    expect(cases.length).toBeGreaterThanOrEqual(31);
  });

  it.each(cases)('$name', async ({ name }) => {
    const expected = (await readFile(join(badDir, name, 'expected.txt'), 'utf8')).split('\n').filter((l) => l !== '');
    const { lines, hasGraph } = await validate(join(badDir, name));
    expect(lines).toEqual(expected);
    expect(hasGraph).toBe(false);
  });

  it('never echoes an inline secret value', async () => {
    const { lines } = await validate(join(badDir, 'inline-secret'));
    expect(lines.join('\n')).not.toContain('hunter2');
  });

  it('reports diagnostics sorted by file, line and column', async () => {
    const { lines } = await validate(join(badDir, 'many-errors'));
    const keys = lines.map((l) => l.split(': ')[0]!.split(':').slice(1).map(Number));
    const sorted = [...keys].sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
    expect(keys).toEqual(sorted);
    expect(lines.length).toBeGreaterThanOrEqual(8);
  });
});

describe('oversized goal file', () => {
  it('is refused from its size, without being parsed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ds-oversized-'));
    try {
      const line = '# padding padding padding padding padding padding padding padding\n';
      await writeFile(join(dir, 'big.yaml'), line.repeat(Math.ceil((defaultLoadLimits.maxFileBytes + 1) / line.length)));
      const { result } = await loadGoalSet({ goalsDir: dir, cwd: dir, registry });
      expect(result.graph).toBeUndefined();
      expect(result.diagnostics.map(formatDiagnostic)).toEqual([
        expect.stringMatching(/^big\.yaml:1:1: error file-too-large: goal file is \d+ bytes; the limit is 8388608$/),
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
