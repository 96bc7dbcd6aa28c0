import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, cli, launcher, localBackend, tempProject } from '../support/cli.ts';
import { warnSkipped } from '../support/skip.ts';

// A terminal to ask on comes from util-linux's script(1).
const hasScript = spawnSync('script', ['--version']).status === 0;
if (!hasScript) warnSkipped(['SKIPPING the apply test that asks on a terminal: `script` (util-linux) is not on PATH.', 'Install util-linux to run it.']);

const p = tempProject('ds-apply-deletions-');
/** `a` quoted for sh, for script(1)'s command line. */
const quote = (a: string): string => `'${a.replaceAll("'", "'\\''")}'`;
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const goal = (files: string[], prune = true): string => `${localBackend(p.root)}---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: local }
  prune: ${prune}
  nodes:
${files.map((f) => `    - id: ${f}\n      type: local.file\n      deletionPolicy: Delete\n      spec: { path: ${f}.txt, content: "${f}\\n", mode: "0644" }`).join('\n')}
`;

describe('apply and deletions (CLI.md: apply exits 0 only when converged)', () => {
  it('without --yes and no terminal to ask on it deletes nothing and exits 1; with --yes it deletes and exits 0', async () => {
    p.write('app.yaml', goal(['a', 'b']));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a']));

    const asked = await cli(['apply', ...p.args]);
    expect(asked.code).toBe(1);
    expect(asked.stderr).toContain('apply would delete 1 node(s): b\nnot deleting: no terminal to ask on; pass --yes to allow deletions\n');
    expect(asked.stdout).toContain('not converged: 1 deletion(s) not done');
    expect(existsSync(join(p.root, 'b.txt'))).toBe(true);

    const json = await cli(['apply', ...p.args, '--format', 'json']);
    expect(json.code).toBe(1);
    // stdout is the JSON alone; the node whose deletion was declined is named (it was only counted)
    expect(JSON.parse(json.stdout)).toMatchObject({ declinedDeletions: 1, declinedNodes: ['b'], refusedDeletions: null });

    const yes = await cli(['apply', ...p.args, '--yes']);
    expect(yes.code, yes.stderr).toBe(0);
    expect(existsSync(join(p.root, 'b.txt'))).toBe(false);
    expect((await cli(['apply', ...p.args])).code).toBe(0); // nothing left to delete: converged
  });

  it('prune turned off in the revision that removes a node: the node is let go, not deleted', async () => {
    p.write('app.yaml', goal(['a', 'd']));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a'], false));
    const plan = await cli(['plan', ...p.args, '--format', 'json']);
    expect(JSON.parse(plan.stdout)).toMatchObject({ counts: { delete: 0 } });
    const r = await cli(['apply', ...p.args, '--yes']);
    expect(r.code, r.stdout).toBe(0);
    expect(existsSync(join(p.root, 'd.txt'))).toBe(true);
    // Orphaned: forgotten by the state, its file left as it is.
    const status = JSON.parse((await cli(['status', ...p.args, '--format', 'json'])).stdout) as { nodes: { id: string }[] };
    expect(status.nodes.map((n) => n.id)).toEqual(['a']);
  });

  it('prune turned on in the revision that removes a node that says Delete: the node is deleted', async () => {
    p.write('app.yaml', goal(['a', 'e'], false));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a'], true));
    const plan = await cli(['plan', ...p.args, '--format', 'json']);
    expect(JSON.parse(plan.stdout)).toMatchObject({ counts: { delete: 1, orphan: 0 } });
    const r = await cli(['apply', ...p.args, '--yes']);
    expect(r.code, r.stdout).toBe(0);
    expect(existsSync(join(p.root, 'e.txt'))).toBe(false);
    const status = JSON.parse((await cli(['status', ...p.args, '--format', 'json'])).stdout) as { nodes: { id: string }[] };
    expect(status.nodes.map((n) => n.id)).toEqual(['a']);
  });

  it('past the mass-deletion guard: plan shows the deletions refused and exits 1 as apply will, apply deletes none and exits 1, --allow-mass-deletion deletes them', async () => {
    const files = Array.from({ length: 12 }, (_, i) => `m${i}`);
    p.write('app.yaml', goal(files));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(files.slice(0, 6)));
    const plan = await cli(['plan', ...p.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('6 to delete (6 refused by the mass-deletion guard without --allow-mass-deletion)');
    expect(plan.stdout).toContain('refused: mass deletion: 6 nodes removed from the goals, over the limit of 5');
    const refused = await cli(['apply', ...p.args, '--yes']);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('refused to delete 6 nodes (limit 5); rerun with --allow-mass-deletion if that is intended');
    expect(existsSync(join(p.root, 'm11.txt'))).toBe(true);
    expect((await cli(['apply', ...p.args, '--yes', '--allow-mass-deletion'])).code).toBe(0);
    expect(existsSync(join(p.root, 'm11.txt'))).toBe(false);
    // Back to the one file the tests below start from.
    p.write('app.yaml', goal(['a']));
    expect((await cli(['apply', ...p.args, '--yes', '--allow-mass-deletion'])).code).toBe(0);
  });

  // Ctrl-C and Ctrl-D at the question were an internal error (readline's AbortError, a stack trace, exit 70).
  it.skipIf(!hasScript)('Ctrl-D at the question is no (exit 1, nothing deleted); Ctrl-C interrupts: exit 130, one line, nothing done, no run', async () => {
    p.write('app.yaml', goal(['a', 'k']));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a']));
    const runs = async (): Promise<unknown> => JSON.parse((await cli(['history', ...p.args, '--format', 'json'])).stdout);
    const before = await runs();

    const ctrlC = await keyOnTerminal(['apply', ...p.args], '\x03');
    expect(ctrlC.code, ctrlC.screen).toBe(130);
    expect(ctrlC.screen).toContain('desiredstate apply: interrupted at the delete question: nothing was applied\r\n');
    expect(ctrlC.screen).not.toContain('Error');
    expect(await runs()).toEqual(before);
    const json = await keyOnTerminal(['apply', ...p.args, '--format', 'json'], '\x03');
    expect(json.code, json.screen).toBe(130);
    expect(json.screen).toContain('"code": "DS_INTERRUPTED"');

    const ctrlD = await keyOnTerminal(['apply', ...p.args], '\x04');
    expect(ctrlD.code, ctrlD.screen).toBe(1);
    expect(ctrlD.screen).toContain('not converged: 1 deletion(s) not done');
    expect(ctrlD.screen).not.toContain('Error');
    expect(existsSync(join(p.root, 'k.txt'))).toBe(true);
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
  });

  // The question went to stdout: `apply > apply.log` waited for an answer to a question nobody saw.
  it.skipIf(!hasScript)('asks on stderr: with stdout to a file, the question is on the terminal and the file holds the result alone', async () => {
    p.write('app.yaml', goal(['a', 'q']));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a']));
    const out = join(p.dir, 'apply.log');
    const command = [launcher, 'apply', ...p.args].map(quote).join(' ') + ` >${quote(out)}`;
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'yes\n', encoding: 'utf8', env: cleanEnv() });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toContain('apply would delete 1 node(s): q');
    expect(r.stdout).toContain('Delete them? Type "yes" to confirm:');
    expect(readFileSync(out, 'utf8')).toBe('  - q: deleted\nApply: 0 created, 0 updated, 1 deleted, 1 unchanged, 0 failed, 0 blocked, 0 held.\n');
    expect(existsSync(join(p.root, 'q.txt'))).toBe(false);
  });

  // A terminal to ask on, from util-linux's script(1): the answer typed there, stdout to a file.
  it.skipIf(!hasScript)('asks on a terminal; with --format json the question goes to stderr and stdout holds the JSON alone', async () => {
    p.write('app.yaml', goal(['a', 'c']));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a']));
    const out = join(p.dir, 'out.json');
    const command = [launcher, 'apply', ...p.args, '--format', 'json'].map(quote).join(' ') + ` >${quote(out)}`;
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'yes\n', encoding: 'utf8', env: cleanEnv() });
    expect(r.status, r.stdout).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ declinedDeletions: 0, declinedNodes: [], summary: { deleted: 1 } });
    expect(r.stdout).toContain('Delete them? Type "yes" to confirm:');
    expect(existsSync(join(p.root, 'c.txt'))).toBe(false);
  });

  // With stderr redirected the question went to the file while apply waited for an answer on the terminal,
  // showing nothing there: it is asked only where both are a terminal, and "yes" typed unasked deletes nothing.
  it.skipIf(!hasScript)('with stderr not a terminal there is no terminal to ask on: nothing deleted, exit 1, the file says why', async () => {
    p.write('app.yaml', goal(['a', 'r']));
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
    p.write('app.yaml', goal(['a']));
    const err = join(p.dir, 'apply-err.txt');
    const command = [launcher, 'apply', ...p.args].map(quote).join(' ') + ` 2>${quote(err)}`;
    const r = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'yes\n', encoding: 'utf8', env: cleanEnv() });
    expect(r.status, readFileSync(err, 'utf8')).toBe(1);
    expect(readFileSync(err, 'utf8')).toBe('apply would delete 1 node(s): r\nnot deleting: no terminal to ask on; pass --yes to allow deletions\n');
    expect(r.stdout).toContain('not converged: 1 deletion(s) not done');
    expect(existsSync(join(p.root, 'r.txt'))).toBe(true);
    expect((await cli(['apply', ...p.args, '--yes'])).code).toBe(0);
  });
});

/** Runs the CLI with `args` on a terminal from script(1) and types `key` once it asks to delete: its exit status and what the terminal showed. */
function keyOnTerminal(args: readonly string[], key: string): Promise<{ code: number | null; screen: string }> {
  const child = spawn('script', ['-qec', [launcher, ...args].map(quote).join(' '), '/dev/null'], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'ignore'] });
  let screen = '';
  let typed = false;
  child.stdout.on('data', (d: Buffer) => {
    screen += d.toString('utf8');
    if (!typed && screen.includes('Type "yes" to confirm: ')) {
      typed = true;
      child.stdin.write(key);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen }));
  });
}

/**
 * apply asks only about the deletes it will attempt. It asked about every node removed under prune + Delete,
 * those it then refuses before any backend call too (plan's `x`: here a node whose Backend was removed with it;
 * `⊘`: one that waits behind it), so the answer "yes" consented to deletes it never made.
 */
describe('the delete question names only the deletes apply attempts', () => {
  /** A Goal under prune with Delete by default, on `backend`, of local files. */
  const goalOf = (name: string, backend: string, nodes: readonly string[]): string => `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: ${name} }
spec:
  prune: true
  defaults: { backend: ${backend}, deletionPolicy: Delete }
  nodes:
${nodes.map((n) => `    - ${n}\n`).join('')}`;
  const file = (id: string, deps = ''): string => `{ id: ${id}, type: local.file,${deps === '' ? '' : ` dependsOn: [${deps}],`} spec: { path: ${id}.txt, content: "${id}" } }`;
  const a = (q: ReturnType<typeof tempProject>, nodes: readonly string[]): void => q.write('a.yaml', `${localBackend(q.root)}---\n${goalOf('g1', 'local', nodes)}`);
  const question = 'apply would delete 1 node(s): gone1 (2 more removed node(s) cannot be deleted: see plan)\n';

  it.skipIf(!hasScript)('asks about gone1 alone, not about b2 (its backend is gone) nor b1 (behind b2): without a terminal, in JSON, and on one', async () => {
    const q = tempProject('ds-apply-refused-deletes-');
    a(q, [file('keep'), file('gone1')]);
    q.write('b.yaml', `${localBackend(join(q.dir, 'root2')).replace('name: local', 'name: loc2')}---\n${goalOf('g2', 'loc2', [file('b1'), file('b2', 'b1')])}`);
    expect((await cli(['apply', ...q.args, '--yes'])).code).toBe(0);
    a(q, [file('keep')]);
    rmSync(join(q.goals, 'b.yaml'));
    const plan = await cli(['plan', ...q.args]);
    expect(plan.code).toBe(1);
    expect(plan.stdout).toMatch(/- gone1[^]*x b2[^]*⊘ b1/);

    const asked = await cli(['apply', ...q.args]);
    expect(asked.code).toBe(1);
    expect(asked.stderr).toContain(`${question}not deleting: no terminal to ask on; pass --yes to allow deletions\n`);
    expect(asked.stdout).toContain('not converged: 1 deletion(s) not done');
    const json = await cli(['apply', ...q.args, '--format', 'json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ declinedDeletions: 1, declinedNodes: ['gone1'] });
    expect(existsSync(join(q.root, 'gone1.txt'))).toBe(true);

    const command = [launcher, 'apply', ...q.args].map(quote).join(' ');
    const yes = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'yes\n', encoding: 'utf8', env: cleanEnv() });
    expect(yes.status, yes.stdout).toBe(1);
    expect(yes.stdout).toContain(question.replace('\n', '\r\n'));
    expect(yes.stdout).toMatch(/- gone1: deleted[^]*x b2: permanent: backend "loc2" is not configured[^]*⊘ b1: blocked/);
    expect(existsSync(join(q.root, 'gone1.txt'))).toBe(false);

    // Left with deletes it refuses alone: nothing to ask, and it says why they stay, as plan does.
    const refused = await cli(['apply', ...q.args]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).not.toContain('apply would delete');
    expect(refused.stdout).toMatch(/x b2: permanent: backend "loc2" is not configured[^]*⊘ b1: blocked/);
  });

  it.skipIf(!hasScript)('an ordinary prune asks about every node it removes, dependencies and all, and deletes them on yes', async () => {
    const q = tempProject('ds-apply-prune-');
    a(q, [file('keep'), file('p1'), file('p2', 'p1'), file('p3', 'p2')]);
    expect((await cli(['apply', ...q.args, '--yes'])).code).toBe(0);
    a(q, [file('keep')]);
    const command = [launcher, 'apply', ...q.args].map(quote).join(' ');
    const yes = spawnSync('script', ['-qec', command, '/dev/null'], { input: 'yes\n', encoding: 'utf8', env: cleanEnv() });
    expect(yes.status, yes.stdout).toBe(0);
    expect(yes.stdout).toContain('apply would delete 3 node(s): p3, p2, p1\r\n');
    for (const id of ['p1', 'p2', 'p3']) expect(existsSync(join(q.root, `${id}.txt`))).toBe(false);
  });
});
