import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, stateRows, tempProject } from '../support/cli.ts';
import { eventually, trackDaemons } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

/**
 * Nodes of the built-in `json-key` template that keep keys of one file: each create, update or delete
 * reads the file, changes its key and writes the file back. Run side by side (apply's and the daemon's
 * default concurrency, 10), one wrote back a file read before another's write: that key was lost, its
 * script's read afterwards did not find it, and the correct script earned a permanent failure
 * (`script-not-achieved`). The backend runs the changes of one file one at a time.
 */
const hasJq = spawnSync('jq', ['--version']).status === 0;
if (!hasJq) warnSkipped(['SKIPPING the script shared-file CLI tests: jq is not on PATH (install jq to run them).']);

const daemons = trackDaemons();
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];

/**
 * A script backend (built-in templates) rooted at `root`, and a goal keeping each key of app.json in `keys` equal to
 * its index plus `base`; the others deleted (prune, Delete).
 */
function goals(base = 0, keys = KEYS): string {
  const nodes = keys.map((k, i) => `    - { id: key-${k}, type: generic.resource, deletionPolicy: Delete, spec: { input: { file: app.json, key: ${k}, value: ${base + i} } } }\n`).join('');
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: scripts }
spec: { type: script, config: { root: root, generator: { type: template } } }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: g, environment: dev }
spec:
  prune: true
  defaults: { backend: scripts }
  nodes:
${nodes}`;
}

/** A project whose json-key script is generated and approved, nothing applied yet. */
async function approvedProject(): Promise<ReturnType<typeof tempProject>> {
  const p = tempProject('ds-script-shared-file-');
  mkdirSync(p.root);
  p.write('g.yaml', goals());
  expect((await cli(['plan', ...p.args], { cwd: p.dir })).stdout).toContain('awaits review');
  const hash = (stateRows(p.state, 'SELECT hash FROM artifacts') as { hash: string }[])[0]!.hash;
  expect((await cli(['scripts', 'approve', hash, ...p.args], { cwd: p.dir })).code).toBe(0);
  return p;
}

const fileOf = (p: { root: string }): unknown => JSON.parse(readFileSync(join(p.root, 'app.json'), 'utf8'));
const keysFrom = (base: number): Record<string, number> => Object.fromEntries(KEYS.map((k, i) => [k, base + i]));
const failures = (p: { state: string }): unknown[] => stateRows(p.state, "SELECT subject, action, detail FROM artifact_runs WHERE outcome = 'failure'");

describe.skipIf(!hasJq)('json-key nodes on one file', () => {
  it('apply creates every key, then updates every key, none lost and no run failed', async () => {
    const p = await approvedProject();
    const create = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(create.stdout + create.stderr).not.toContain('did not do it');
    expect(create.code).toBe(0);
    expect(fileOf(p)).toEqual(keysFrom(0));

    // Every value changed: eight updates of one file at once.
    p.write('g.yaml', goals(10));
    const update = await cli(['apply', '--yes', ...p.args], { cwd: p.dir });
    expect(update.stdout + update.stderr).not.toContain('did not do it');
    expect(update.code).toBe(0);
    expect(fileOf(p)).toEqual(keysFrom(10));
    expect(failures(p)).toEqual([]);
  });

  it('the daemon converges every key, none lost and no run failed', async () => {
    const p = await approvedProject();
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.port();
    // Converged, or a run failed: whichever comes first.
    await eventually(
      () => (stateRows(p.state, "SELECT COUNT(*) AS n FROM nodes WHERE status IN ('ready', 'failed', 'held')") as { n: number }[])[0]!.n === KEYS.length,
      30_000,
      'every node ready or failed',
    );
    expect(failures(p)).toEqual([]);
    expect(fileOf(p)).toEqual(keysFrom(0));
  });

  it('the daemon deletes the keys removed from the goals while it updates the others, none lost and no run failed', async () => {
    const p = await approvedProject();
    const d = daemons.start([...p.args, '--listen', '127.0.0.1:0', '--interval', '1h'], { cwd: p.dir });
    await d.port();
    const count = (where: string): number => (stateRows(p.state, `SELECT COUNT(*) AS n FROM nodes WHERE ${where}`) as { n: number }[])[0]!.n;
    await eventually(() => count("status IN ('ready', 'failed', 'held')") === KEYS.length, 30_000, 'every node ready or failed');
    // Half the keys go (as many as the mass-deletion guard lets a revision delete), the others change: the
    // reload's deletes and a worker's updates take the file's turns.
    const kept = KEYS.slice(0, 4);
    p.write('g.yaml', goals(10, kept));
    await eventually(
      () => (count('1 = 1') === kept.length && count("status = 'ready'") === kept.length) || count("status IN ('failed', 'held')") > 0,
      30_000,
      'the removed nodes deleted and the others updated, or one failed',
    );
    expect(failures(p)).toEqual([]);
    expect(fileOf(p)).toEqual(Object.fromEntries(kept.map((k, i) => [k, 10 + i])));
  });
});
