import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import type * as FsPromises from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { compileGoals, compileGoalsCached, createContext } from '../../src/cli/context.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { entryIdentity, goalSetKey, goalSetScope, keepAsLastGood, readCompiledGoals, readLastGoodGoals, writeCompiledGoals } from '../../src/cli/goal-cache.ts';
import type { GoalSetScope, StoredEntry } from '../../src/cli/goal-cache.ts';
import { readGoalSources } from '../../src/runtime/index.ts';
import type { LoadedGoals } from '../../src/cli/load.ts';
import { cli, goalHead, localBackend, oneFileGoal, repoRoot, tempProject } from '../support/cli.ts';

/**
 * A goal file saved anew just after its next read (an editor's save, a checkout), armed by a test: the
 * goal files' reads (`node:fs/promises` `readFile`) go to the file system as ever, and this one then writes.
 */
const saveAfterRead = vi.hoisted(() => ({ armed: undefined as { file: string; text: string } | undefined }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof FsPromises>();
  const readFile = async (...args: Parameters<typeof fs.readFile>): Promise<string | Buffer> => {
    const read = await fs.readFile(...args);
    const armed = saveAfterRead.armed;
    if (armed !== undefined && args[0] === armed.file) {
      saveAfterRead.armed = undefined;
      await fs.writeFile(armed.file, armed.text);
    }
    return read;
  };
  return { ...fs, readFile };
});

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** The key of a goal directory's files as they are now, within `scope`. */
async function keyOf(scope: GoalSetScope): Promise<string | undefined> {
  return goalSetKey(scope, await readGoalSources(scope.goalsDir, { displayRoot: scope.cwd }));
}

function context(goals: string, state: string): CliContext {
  const ctx = createContext({ goals, state, 'log-level': 'silent' }, { out: () => undefined, env: {}, cwd: repoRoot, program: 'test-program' });
  return { ...ctx, log: pino({ level: 'silent' }) };
}

/** The entry stored now under `key` (just written), as `compileGoalsCached` keeps it to hand to `keepAsLastGood`. */
function storedEntry(state: string, key: string, scope: string, loaded: LoadedGoals): StoredEntry {
  return { key, scope, loaded, identity: entryIdentity(state) };
}

/** Everything a command reads of a compiled goal set, in comparable form (the spec brand and digest included). */
function comparable(l: LoadedGoals): unknown {
  const g = l.result.graph!;
  return {
    order: g.order.map((n) => n.id),
    nodes: [...g.ids()].map((id) => {
      const n = g.get(id)!;
      return { ...n, spec: { ...n.spec, branded: Object.getOwnPropertySymbols(n.spec).length, frozen: Object.isFrozen(n.spec) } };
    }),
    dependents: [...g.ids()].map((id) => g.dependents(id)),
    goals: l.result.goals,
    diagnostics: l.result.diagnostics,
    gates: [...l.result.gates],
    backends: [...l.factory.backends],
    policyDefaults: [...l.factory.policyDefaults],
    files: l.files,
  };
}

describe('compiled-goal cache', () => {
  // The bundled goals and every example: local files, PostgreSQL with secrets and references,
  // an organisation policy with environment defaults and held nodes, generated scripts.
  it.each(['goals', 'examples/postgres', 'examples/org-policy', 'examples/scripts'])('%s: what comes back from the cache is what the compiler made', async (dir) => {
    const state = mkdtempSync(join(tmpdir(), 'ds-goal-cache-'));
    dirs.push(state);
    const ctx = context(join(repoRoot, dir), state);
    const fresh = await compileGoals(ctx, 'hold');
    expect(fresh.result.graph).toBeDefined();
    const key = (await keyOf({ goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: 'p' }))!;
    expect(writeCompiledGoals(state, key, 's', fresh)).toBe(true);
    const cached = readCompiledGoals(state, key);
    expect(cached).toBeDefined();
    expect(comparable(cached!)).toEqual(comparable(fresh));
  });

  it('keeps the edges a backend implies (a file in a directory node\'s path): implicit, with their source and why', async () => {
    const p = tempProject('ds-goal-cache-implied-');
    p.write('app.yaml', `${localBackend(p.root)}---
${goalHead()}    - { id: index, type: local.file, spec: { path: www/index.html, content: hi } }
    - { id: www, type: local.directory, spec: { path: www } }
`);
    mkdirSync(p.state);
    const ctx = context(p.goals, p.state);
    const fresh = await compileGoals(ctx, 'hold');
    const implied = fresh.result.graph!.get('index')!.dependsOn;
    expect(implied).toEqual([expect.objectContaining({ on: 'www', implicit: true, why: expect.stringContaining('directory node "www"') })]);
    const key = (await keyOf({ goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: 'p' }))!;
    expect(writeCompiledGoals(p.state, key, 's', fresh)).toBe(true);
    const cached = readCompiledGoals(p.state, key);
    expect(cached!.result.graph!.get('index')!.dependsOn).toEqual(implied);
    expect(comparable(cached!)).toEqual(comparable(fresh));
  });

  it('the key changes with any goal file byte, a new file, the program, the mode or the directory shown against', async () => {
    const p = tempProject('ds-goal-key-');
    dirs.push(p.dir);
    p.write('a.yaml', localBackend(p.root));
    const key = (extra: Partial<GoalSetScope> = {}) => keyOf({ goalsDir: p.goals, cwd: p.dir, mode: 'hold', program: 'p1', ...extra });
    const k0 = await key();
    expect(await key()).toBe(k0);
    expect(await key({ program: 'p2' })).not.toBe(k0);
    expect(await key({ mode: 'refuse' })).not.toBe(k0);
    expect(await key({ cwd: repoRoot })).not.toBe(k0);
    p.write('a.yaml', localBackend(p.root).replace('local', 'locaL'));
    const k1 = await key();
    expect(k1).not.toBe(k0);
    p.write('b.yml', '# nothing yet\n');
    expect(await key()).not.toBe(k1);
    p.write('.hidden.yaml', 'ignored by the loader, so by the key\n');
    expect(await key()).toBe(await key());
  });

  it('the last good set is read by its scope whatever its files, and never across scopes', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ds-goal-cache-'));
    dirs.push(state);
    const ctx = context(join(repoRoot, 'goals'), state);
    const fresh = await compileGoals(ctx, 'hold');
    const scope = { goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: 'p1' };
    writeCompiledGoals(state, 'files as they were', goalSetScope(scope), fresh);
    expect(comparable(readLastGoodGoals(state, goalSetScope(scope), 'files as they were')!.loaded)).toEqual(comparable(fresh));
    for (const other of [{ program: 'p2' }, { goalsDir: '/elsewhere' }, { mode: 'refuse' }, { cwd: '/' }]) {
      expect(readLastGoodGoals(state, goalSetScope({ ...scope, ...other }), 'files as they were')).toBeUndefined();
    }
  });

  it('the last good set comes with the commit kept for it, and none kept for another entry', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ds-goal-cache-'));
    dirs.push(state);
    const ctx = context(join(repoRoot, 'goals'), state);
    const fresh = await compileGoals(ctx, 'hold');
    const scope = goalSetScope({ goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: 'p1' });
    writeCompiledGoals(state, 'k1', scope, fresh);
    expect(readLastGoodGoals(state, scope, 'k1')?.commit).toBeNull();
    expect(keepAsLastGood(state, storedEntry(state, 'k1', scope, fresh), 'c1')).toBe(true);
    expect(readLastGoodGoals(state, scope, 'k1')?.commit).toBe('c1');
    // Another entry kept, its commit not written (a crash between the two): not known, never the older one.
    writeCompiledGoals(state, 'k2', scope, fresh);
    expect(keepAsLastGood(state, storedEntry(state, 'k2', scope, fresh), 'c2')).toBe(true);
    writeFileSync(join(state, 'last-good-goals.commit.json'), JSON.stringify({ key: 'k1', commit: 'c1' }));
    expect(readLastGoodGoals(state, scope, 'k2')?.commit).toBeNull();
  });

  // The last good goals were whatever entry was kept last: an apply that kept none (the cache off, its
  // write failed, killed first) left older goals there, and a daemon started on a broken revision ran them.
  it('takes only the entry of the goals last applied: an older one left in place is never taken for them', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ds-goal-cache-'));
    dirs.push(state);
    const older = await compileGoals(context(join(repoRoot, 'goals'), state), 'hold');
    const applied = await compileGoals(context(join(repoRoot, 'examples/postgres'), state), 'hold');
    const scope = goalSetScope({ goalsDir: join(repoRoot, 'goals'), cwd: repoRoot, mode: 'hold', program: 'p1' });
    writeCompiledGoals(state, 'k1', scope, older);
    expect(keepAsLastGood(state, storedEntry(state, 'k1', scope, older), 'c1')).toBe(true);
    expect(readLastGoodGoals(state, scope, 'k2')).toBeUndefined();
    // Applied once stored, and killed before it was kept: the stored entry is theirs.
    writeCompiledGoals(state, 'k2', scope, applied);
    const kept = readLastGoodGoals(state, scope, 'k2')!;
    expect(comparable(kept.loaded)).toEqual(comparable(applied));
    expect(kept.commit).toBeNull(); // the commit kept is the older goals'
  });

  it('keeps the entry it was given once applied: a second name of it, or written out again when a plan of other goals has replaced it meanwhile', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ds-goal-cache-'));
    dirs.push(state);
    const ctx = context(join(repoRoot, 'goals'), state);
    const fresh = await compileGoals(ctx, 'hold');
    const scope = goalSetScope({ goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: 'p1' });
    const branch = goalSetScope({ goalsDir: '/a/branch/work/tree', cwd: ctx.cwd, mode: 'hold', program: 'p1' });
    writeCompiledGoals(state, 'k1', scope, fresh);
    expect(keepAsLastGood(state, storedEntry(state, 'k1', scope, fresh), 'c1')).toBe(true);
    expect(statSync(join(state, 'last-good-goals.json')).ino).toBe(statSync(join(state, 'compiled-goals.json')).ino);
    // Applied a while after it was stored: a plan of a branch's goals has replaced the stored entry since.
    writeCompiledGoals(state, 'k2', scope, fresh);
    const later = storedEntry(state, 'k2', scope, fresh);
    writeCompiledGoals(state, 'from a plan', branch, fresh);
    expect(keepAsLastGood(state, later, 'c2')).toBe(true);
    expect(readLastGoodGoals(state, branch, 'k2')).toBeUndefined();
    const kept = readLastGoodGoals(state, scope, 'k2')!;
    expect(kept.commit).toBe('c2');
    expect(comparable(kept.loaded)).toEqual(comparable(fresh));
  });

  it('anything but an intact entry under the same key is a miss', async () => {
    const state = mkdtempSync(join(tmpdir(), 'ds-goal-cache-'));
    dirs.push(state);
    const fresh = await compileGoals(context(join(repoRoot, 'goals'), state), 'hold');
    expect(readCompiledGoals(state, 'k')).toBeUndefined(); // nothing stored
    writeCompiledGoals(state, 'k', 's', fresh);
    expect(readCompiledGoals(state, 'other')).toBeUndefined();
    const file = join(state, 'compiled-goals.json');
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { format: number; strings: string[]; nodes: unknown[][] };
    writeFileSync(file, JSON.stringify({ ...stored, format: 1 })); // the previous format
    expect(readCompiledGoals(state, 'k')).toBeUndefined();
    const node0 = [...stored.nodes[0]!];
    const withNode0 = (n: unknown[]): string => JSON.stringify({ ...stored, nodes: [n, ...stored.nodes.slice(1)] });
    // An edge to a node that is not there: the graph does not build, so it is not used.
    writeFileSync(file, withNode0(node0.with(11, [['nowhere', 0, 1, 1, 0]])));
    expect(readCompiledGoals(state, 'k')).toBeUndefined();
    // A damaged entry (an index past its table, a dependency cut short) is a miss too, not a crash.
    writeFileSync(file, withNode0(node0.with(1, stored.strings.length)));
    expect(readCompiledGoals(state, 'k')).toBeUndefined();
    writeFileSync(file, withNode0(node0.with(11, [['nowhere']])));
    expect(readCompiledGoals(state, 'k')).toBeUndefined();
    // Intact again: a hit.
    writeFileSync(file, JSON.stringify(stored));
    expect(readCompiledGoals(state, 'k')?.result.graph?.size).toBe(fresh.result.graph?.size);
    writeFileSync(file, '{ truncated');
    expect(readCompiledGoals(state, 'k')).toBeUndefined();
  });
});

describe.skipIf(process.platform === 'win32')('compiled-goal cache: files it must not read', () => {
  // The key reads every goal file: a FIFO named *.yaml made plan and apply wait forever, a
  // dangling link threw. No key (no cache): the compile reports them.
  it('gives no key for a goal set holding a FIFO or a dangling link, without waiting', async () => {
    const p = tempProject('ds-cache-special-');
    dirs.push(p.dir);
    p.write('a.yaml', oneFileGoal(p.root, 'x'));
    execFileSync('mkfifo', [join(p.goals, 'pipe.yaml')]);
    expect(await keyOf({ goalsDir: p.goals, cwd: p.dir, mode: 'hold', program: 'p' })).toBeUndefined();
    rmSync(join(p.goals, 'pipe.yaml'));
    symlinkSync(join(p.dir, 'missing.yaml'), join(p.goals, 'gone.yaml'));
    expect(await keyOf({ goalsDir: p.goals, cwd: p.dir, mode: 'hold', program: 'p' })).toBeUndefined();
  });
});

describe('compiled-goal cache through the CLI', () => {
  it('apply uses it while the goals are unchanged, and never applies a stale graph', async () => {
    const p = tempProject('ds-goal-cache-cli-');
    dirs.push(p.dir);
    const goal = (content: string): string => oneFileGoal(p.root, content);
    const apply = () => cli(['apply', ...p.args, '--yes', '--log-level', 'debug']);
    p.write('app.yaml', goal('one\n'));
    const first = await apply();
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toContain('taken from the cache');
    const second = await apply();
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain('compiled goals unchanged; taken from the cache');

    p.write('app.yaml', goal('two\n'));
    const changed = await apply();
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stderr).not.toContain('taken from the cache');
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('two\n');

    // A broken revision is compiled (and refused), not answered from the cache of the last good one.
    p.write('app.yaml', goal('three\n').replace('content:', 'contnet:'));
    const broken = await apply();
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('unknown-field');
    expect(readFileSync(join(p.root, 'app.conf'), 'utf8')).toBe('two\n');

    const off = await cli(['apply', ...p.args, '--yes', '--log-level', 'debug'], { env: { DESIREDSTATE_GOAL_CACHE: 'off' } });
    expect(off.code).toBe(1);
  });
});

describe('compiled-goal cache: a goal file saved while it is read', () => {
  // The key was taken of the files' bytes, and the compile read them again: a file saved in between
  // had its new revision compiled under the old bytes' key, and once the file was back to those bytes
  // (a checkout back, an editor's two-step save) every plan, apply and run acted on the other revision.
  it('stores the compile under the key of the bytes compiled: a file saved in between, then put back, gets its own graph', async () => {
    const p = tempProject('ds-goal-cache-saved-');
    const file = join(p.goals, 'app.yaml');
    const revision = (content: string): string => oneFileGoal(p.root, content);
    const ctx = context(p.goals, p.state);
    const contentOf = (l: LoadedGoals): unknown => (l.result.graph!.get('conf')!.spec.spec as { content?: unknown }).content;
    const content = async (): Promise<unknown> => contentOf((await compileGoalsCached(ctx)).loaded);
    writeFileSync(file, revision('A\n'));
    saveAfterRead.armed = { file, text: revision('B\n') };
    expect(await content()).toBe('A\n'); // what was read, once
    expect(saveAfterRead.armed).toBeUndefined(); // saved, after the read
    // Back to the bytes compiled (a checkout back): their own graph, from the cache.
    writeFileSync(file, revision('A\n'));
    expect(await content()).toBe('A\n');
    const keyA = (await keyOf({ goalsDir: ctx.goalsDir, cwd: ctx.cwd, mode: 'hold', program: 'test-program' }))!;
    expect(contentOf(readCompiledGoals(p.state, keyA)!)).toBe('A\n');
    writeFileSync(file, revision('B\n'));
    expect(await content()).toBe('B\n');
  });
});
