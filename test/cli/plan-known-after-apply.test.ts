import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, goalHead, localBackend, planBoth, tempProject } from '../support/cli.ts';

/**
 * A node found in sync whose spec reads outputs of a node the plan changes was shown unchanged (`=`),
 * and `apply` then updated it: the plan under-reported. What such an output will be is known only
 * after apply, as Terraform says: plan shows the reader as a possible update (`~`, counted to update),
 * and its own readers in turn. Only a reference of outputs counts, not a `dependsOn` or an implied edge.
 */

/** File nodes (`id`, what else its line holds) on a local backend in the project's root, under a goal with `selfHeal`. */
function write(p: ReturnType<typeof tempProject>, nodes: readonly (readonly [string, string])[], selfHeal = true): void {
  const lines = nodes.map(([id, rest]) => `    - id: ${id}\n${rest}`).join('');
  p.write('goals.yaml', `${localBackend(p.root)}---\n${goalHead(`  selfHeal: ${selfHeal}\n  defaults: { backend: local }\n`)}${lines}`);
}

const file = (path: string, content: string, extra = ''): string => `      type: local.file\n${extra}      spec: { path: ${path}, content: ${JSON.stringify(content)} }\n`;
const readsA = file('b.txt', 'a is ${nodes.a.outputs.sha256}\n');
const known = (id: string, of: string): string => `  ~ ${id} (local.file via local) known after apply: reads outputs of ${of}, which this plan changes\n`;

async function apply(args: readonly string[]): Promise<string> {
  const r = await cli(['apply', '--yes', ...args]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

describe('plan: a node that reads outputs of a node the plan changes', () => {
  it('is a possible update, known after apply, which apply then makes (text, JSON and exit status)', async () => {
    const p = tempProject('ds-known-after-');
    write(p, [['a', file('a.txt', 'one\n')], ['b', readsA]]);
    await apply(p.args);
    write(p, [['a', file('a.txt', 'two\n')], ['b', readsA]]);

    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain(known('b', 'a'));
    expect(plan.text).toContain('Plan: 0 to create, 2 to update, 0 to delete, 0 drifted, 0 unchanged, 0 blocked or held, 0 errors.');
    expect(plan.json.entries.find((e) => e.id === 'b')?.planned).toEqual({ action: 'update', diffs: [], knownAfterApply: ['a'] });
    expect(plan.json.counts).toMatchObject({ update: 2, none: 0 });

    const applied = await apply(p.args);
    expect(applied).toContain('~ b: updated');
    expect(applied).toContain('Apply: 0 created, 2 updated, 0 deleted, 0 unchanged, 0 failed, 0 blocked, 0 held.');
    expect(readFileSync(join(p.root, 'b.txt'), 'utf8')).not.toBe(readFileSync(join(p.root, 'a.txt'), 'utf8'));
    expect((await cli(['plan', ...p.args])).code).toBe(0);
  });

  it('marks a chain: c reads outputs of b, which reads outputs of a', async () => {
    const p = tempProject('ds-known-after-');
    const nodes = (a: string): [string, string][] => [['a', file('a.txt', a)], ['b', readsA], ['c', file('c.txt', 'b is ${nodes.b.outputs.sha256}\n')]];
    write(p, nodes('one\n'));
    await apply(p.args);
    write(p, nodes('two\n'));

    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain(known('b', 'a'));
    expect(plan.text).toContain(known('c', 'b'));
    expect(plan.json.counts).toMatchObject({ update: 3, none: 0 });
    expect(await apply(p.args)).toContain('Apply: 0 created, 3 updated, 0 deleted, 0 unchanged,');
  });

  it('leaves a plain dependsOn and a directory-implied edge unchanged (=): neither reads an output', async () => {
    const p = tempProject('ds-known-after-');
    const nodes = (mode: string): [string, string][] => [
      ['a', file('a.txt', `${mode}\n`)],
      ['after', file('after.txt', 'x\n', '      dependsOn: [a]\n')],
      ['dir', `      type: local.directory\n      spec: { path: sub, mode: "${mode}" }\n`],
      ['inside', file('sub/in.txt', 'y\n')],
    ];
    write(p, nodes('0755'));
    await apply(p.args);
    write(p, nodes('0750'));

    const plan = await planBoth(['--all', ...p.args]);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('  = after (local.file via local)\n');
    expect(plan.text).toContain('  = inside (local.file via local)\n');
    expect(plan.text).not.toContain('known after apply');
    expect(plan.json.counts).toMatchObject({ update: 2, none: 2 });
  });

  it('leaves the reader of a node whose drift the plan corrects in place unchanged: corrected, it gives what it gave when applied', async () => {
    const p = tempProject('ds-known-after-');
    write(p, [['a', file('a.txt', 'one\n')], ['b', readsA]]);
    await apply(p.args);
    writeFileSync(join(p.root, 'a.txt'), 'edited by hand\n');

    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('  ! a (local.file via local) drifted, will be corrected\n');
    expect(plan.text).not.toContain('~ b');
    expect(plan.text).toContain('Plan: 0 to create, 0 to update, 0 to delete, 1 drifted, 1 unchanged,');
    const applied = await apply(p.args);
    expect(applied).toContain('Apply: 0 created, 1 updated, 0 deleted, 1 unchanged,');
    expect(readFileSync(join(p.root, 'a.txt'), 'utf8')).toBe('one\n');
  });

  it('marks the reader of a node the plan makes again after a delete by hand: a new resource may give other outputs', async () => {
    const p = tempProject('ds-known-after-');
    write(p, [['a', file('a.txt', 'one\n')], ['b', readsA]]);
    await apply(p.args);
    rmSync(join(p.root, 'a.txt'));

    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('  ! a (local.file via local) drifted, will be corrected\n');
    expect(plan.text).toContain(known('b', 'a'));
    expect(plan.text).toContain('Plan: 0 to create, 1 to update, 0 to delete, 1 drifted, 0 unchanged,');
    // Only possible: the file made again has the content it had, so `b` reads the same and is left as it is.
    const applied = await apply(p.args);
    expect(applied).not.toContain('~ b');
    expect(readFileSync(join(p.root, 'a.txt'), 'utf8')).toBe('one\n');
  });

  it('shows a drifted reader (report only) as that possible update, its drift listed, and apply makes it', async () => {
    const p = tempProject('ds-known-after-');
    write(p, [['a', file('a.txt', 'one\n')], ['b', readsA]], false);
    await apply(p.args);
    write(p, [['a', file('a.txt', 'two\n')], ['b', readsA]], false);
    writeFileSync(join(p.root, 'b.txt'), 'edited by hand\n');

    const plan = await planBoth(p.args);
    expect(plan.code).toBe(2);
    expect(plan.text).toContain(`${known('b', 'a')}      content: `);
    expect(plan.text).toContain('Plan: 0 to create, 2 to update, 0 to delete, 0 drifted, 0 unchanged,');
    expect(plan.json.entries.find((e) => e.id === 'b')?.planned).toMatchObject({ action: 'update', knownAfterApply: ['a'], diffs: [{ path: 'content' }] });

    expect(await apply(p.args)).toContain('~ b: updated');
    expect(readFileSync(join(p.root, 'b.txt'), 'utf8')).toMatch(/^a is [0-9a-f]{64}\n$/);
  });

  it('leaves drift no update can correct as drift: apply cannot converge the reader whatever it reads, and plan exits 1', async () => {
    const p = tempProject('ds-known-after-');
    write(p, [['a', file('a.txt', 'one\n')], ['b', readsA]]);
    await apply(p.args);
    write(p, [['a', file('a.txt', 'two\n')], ['b', readsA]]);
    rmSync(join(p.root, 'b.txt'));
    mkdirSync(join(p.root, 'b.txt'));

    const plan = await planBoth(p.args);
    expect(plan.text).toMatch(/^ {2}! b \(local\.file via local\) drifted, report only \(.*\n {6}kind: "directory" → "file" \(not corrected: /m);
    expect(plan.text).not.toContain('known after apply');
    expect(plan.code).toBe(1);
    expect((await cli(['apply', '--yes', ...p.args])).code).toBe(1);
  });

  // A reader whose spec changed against the outputs it reads now was an update with those diffs: after a
  // rotation, `p` still gave the old secret (no longer a secret the mask knows), and plan printed it.
  it('drops the diffs of a reader to update: found against outputs apply replaces, they may hold a rotated secret', async () => {
    const p = tempProject('ds-known-after-');
    // Each exec node keeps the input it was sent and gives it back as its state and as its output `echo`.
    const script = join(p.dir, 'res.js');
    writeFileSync(
      script,
      `#!${process.execPath}
const fs = require('node:fs');
const file = ${JSON.stringify(p.dir)} + '/' + process.argv[3] + '.json';
const req = JSON.parse(fs.readFileSync(0, 'utf8'));
if (process.argv[2] !== 'read') fs.writeFileSync(file, JSON.stringify(req.input));
const kept = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined;
process.stdout.write(JSON.stringify(process.argv[2] !== 'read' ? { outputs: { echo: kept } } : kept === undefined ? { exists: false } : { exists: true, state: kept, outputs: { echo: kept } }));
`,
    );
    chmodSync(script, 0o755);
    const commands = (id: string): string => `{ read: [${script}, read, ${id}], create: [${script}, create, ${id}], update: [${script}, update, ${id}] }`;
    p.write(
      'goals.yaml',
      `${execGoalHead()}    - { id: p, type: generic.resource, spec: { commands: ${commands('p')}, input: { name: p1, pw: { fromEnv: MYSECRET } } } }
    - { id: c, type: generic.resource, spec: { commands: ${commands('c')}, input: { echo: "\${nodes.p.outputs.echo}" } } }
`,
    );
    expect((await cli(['apply', '--yes', ...p.args], { env: { MYSECRET: 'FirstValue1111' } })).code).toBe(0);

    const plan = await planBoth(p.args, { MYSECRET: 'SecondValue2222' });
    expect(plan.code).toBe(2);
    expect(plan.text).toContain('  ~ c (generic.resource via exec) known after apply: reads outputs of p, which this plan changes\n');
    expect(plan.json.entries.find((e) => e.id === 'c')?.planned).toEqual({ action: 'update', diffs: [], knownAfterApply: ['p'] });
    for (const shown of [plan.text, JSON.stringify(plan.json)]) {
      expect(shown).not.toContain('FirstValue1111');
      expect(shown).not.toContain('SecondValue2222');
    }
    expect(plan.text).toContain('Plan: 0 to create, 2 to update, 0 to delete, 0 drifted, 0 unchanged,');
  });
});
