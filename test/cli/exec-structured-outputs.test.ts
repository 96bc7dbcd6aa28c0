import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, execGoalHead, tempProject } from '../support/cli.ts';

/**
 * GOAL-FORMAT.md: create and update print `{"outputs": {…}}`, with no limit on the values' types. An
 * output that was a list or a map was refused as bad output; the create had made its resource, so the
 * next apply's read was told the create was interrupted, printed the same outputs, and failed the same
 * way on every pass: the node stuck for ever. Outputs are any JSON now, recorded and handed back as
 * printed; a dependent takes a list or map whole where its field takes one, and is refused (itself, not
 * the node that printed it) where the reference sits inside text.
 */

const env = { DESIREDSTATE_LOG_LEVEL: 'silent', MYTOKEN: 'tok-SECRET-4711abc' };

interface StatusNode {
  readonly id: string;
  readonly status: string;
  readonly outputs: Record<string, unknown> | null;
  readonly updatedAt: string | number;
  readonly lastFault: { readonly message: string } | null;
}

async function status(args: readonly string[]): Promise<Map<string, StatusNode>> {
  const r = await cli(['status', '--format', 'json', ...args], { env });
  expect(r.code, r.stderr).toBe(0);
  return new Map((JSON.parse(r.stdout) as { nodes: StatusNode[] }).nodes.map((n) => [n.id, n]));
}

function requests(file: string): { op: string; req: { input: unknown; outputs: unknown; interrupted?: true } }[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { op: string; req: { input: unknown; outputs: unknown; interrupted?: true } });
}

/**
 * A node script: `<dir> <name> <op>`. Keeps the resource `name` in `<dir>/<name>.state` (its input),
 * logs each request to `<dir>/<name>.requests`, and prints `outputs` from create, update and read:
 * a list, a map, and the allowlisted token inside a list. `<dir>/<name>.garble`, while it exists, makes
 * a create make its resource and then print no JSON (exit 0), as an earlier release took the outputs.
 */
function resourceScript(dir: string): string {
  const path = join(dir, 'res.mjs');
  writeFileSync(
    path,
    `#!/usr/bin/env node
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
const [dir, name, op] = process.argv.slice(2);
const req = JSON.parse(readFileSync(0, 'utf8'));
const file = dir + '/' + name + '.state';
appendFileSync(dir + '/' + name + '.requests', JSON.stringify({ op, req }) + '\\n');
const outputs = name === 'a' ? { rid: 'r-1', tags: ['a', 'b'], ep: { host: 'h', ports: [80, 443] }, keys: ['plain', process.env.MYTOKEN] } : {};
if (op === 'read') {
  console.log(JSON.stringify(existsSync(file) ? { exists: true, state: JSON.parse(readFileSync(file, 'utf8')), outputs } : { exists: false }));
} else {
  writeFileSync(file, JSON.stringify(req.input));
  if (existsSync(dir + '/' + name + '.garble')) { rmSync(dir + '/' + name + '.garble'); console.log('made it'); }
  else console.log(JSON.stringify({ outputs }));
}
`,
  );
  chmodSync(path, 0o755);
  return path;
}

const node = (id: string, script: string, dir: string, input: string): string => `    - id: ${id}
      type: generic.resource
      spec:
        commands: { read: [${script}, ${dir}, ${id}, read], create: [${script}, ${dir}, ${id}, create], update: [${script}, ${dir}, ${id}, update] }
        input: ${input}
`;

const STORED = { rid: 'r-1', tags: ['a', 'b'], ep: { host: 'h', ports: [80, 443] }, keys: ['plain', '<secret>'] };

describe('exec outputs that are lists and maps', () => {
  it('are stored as printed (a secret in a list masked), handed back on stdin, taken whole by a dependent, and a later apply is steady', async () => {
    const p = tempProject('ds-exec-structured-');
    const script = resourceScript(p.dir);
    p.write(
      'goals.yaml',
      `${execGoalHead({ config: '{ env: [PATH, MYTOKEN] }' })}${node('a', script, p.dir, '{ size: 1 }')}${node(
        'b',
        script,
        p.dir,
        '{ rid: "${nodes.a.outputs.rid}", tags: "${nodes.a.outputs.tags}", ep: "${nodes.a.outputs.ep}", keys: "${nodes.a.outputs.keys}", url: "id=${nodes.a.outputs.rid}" }',
      )}`,
    );
    const first = await cli(['apply', '--yes', ...p.args], { env });
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toContain('2 created');
    let nodes = await status(p.args);
    expect(nodes.get('a')).toMatchObject({ status: 'ready', outputs: STORED });
    expect(nodes.get('b')).toMatchObject({ status: 'ready' });
    // The dependent's input: a scalar whole and inside text, a list and a map whole, the masked list as stored.
    expect(JSON.parse(readFileSync(join(p.dir, 'b.state'), 'utf8'))).toEqual({ rid: 'r-1', tags: ['a', 'b'], ep: { host: 'h', ports: [80, 443] }, keys: ['plain', '<secret>'], url: 'id=r-1' });

    // Drift on `a`: its update, and the reads, are handed the outputs as recorded.
    writeFileSync(join(p.dir, 'a.state'), JSON.stringify({ size: 2 }));
    const second = await cli(['apply', '--yes', ...p.args], { env });
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect(second.stdout).toContain('1 updated');
    const sent = requests(join(p.dir, 'a.requests'));
    expect(sent.map((r) => r.op)).toEqual(['read', 'create', 'read', 'update']);
    for (const r of sent.slice(2)) expect(r.req.outputs).toEqual(STORED);

    // Steady: nothing to do, and no record written again (outputs read anew are equal, not the same object).
    nodes = await status(p.args);
    const third = await cli(['apply', '--yes', ...p.args], { env });
    expect(third.code, third.stdout + third.stderr).toBe(0);
    expect(third.stdout).toContain('0 created, 0 updated, 0 deleted, 2 unchanged');
    const after = await status(p.args);
    for (const id of ['a', 'b']) expect(after.get(id)!.updatedAt).toBe(nodes.get(id)!.updatedAt);

    // The token is nowhere in the state.
    const bytes = readdirSync(p.state, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => readFileSync(join(e.parentPath, e.name)).toString('latin1'))
      .join('\n');
    expect(bytes).not.toContain('SECRET');
  });

  it('inside text, or whole in a field that takes text, fail the dependent with the output named and its type; the producer stays ready', async () => {
    const p = tempProject('ds-exec-structured-text-');
    const script = resourceScript(p.dir);
    p.write(
      'goals.yaml',
      `${execGoalHead()}${node('a', script, p.dir, '{}')}${node('c', script, p.dir, '{ label: "tags=${nodes.a.outputs.tags}", at: "${nodes.a.outputs.ep}/x" }')}    - id: f
      type: local.file
      backend: local
      spec: { path: f.txt, content: "\${nodes.a.outputs.tags}" }
`,
    );
    p.write('local.yaml', `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: local }\nspec: { type: local, config: { root: ${p.root} } }\n`);
    const r = await cli(['apply', '--yes', ...p.args], { env });
    expect(r.code).toBe(1);
    const nodes = await status(p.args);
    expect(nodes.get('a')).toMatchObject({ status: 'ready', outputs: { tags: ['a', 'b'] } });
    expect(nodes.get('c')!.lastFault?.message).toBe(
      'node "c": spec.input.label: ${nodes.a.outputs.tags} is a list (a JSON array), which cannot be inserted into text; spec.input.at: ${nodes.a.outputs.ep} is a map (a JSON object), which cannot be inserted into text',
    );
    expect(nodes.get('f')!.lastFault?.message).toBe('node "f": spec.content: expected a string, got a list (from ${nodes.a.outputs.tags})');
    // Neither command of `c` ran: it was refused before its backend was called.
    expect(() => readFileSync(join(p.dir, 'c.requests'))).toThrow();
  });

  it('a created resource whose create printed no JSON is adopted by the read that prints them: it converges, never stuck', async () => {
    const p = tempProject('ds-exec-structured-stuck-');
    const script = resourceScript(p.dir);
    p.write('goals.yaml', `${execGoalHead({ config: '{ env: [PATH, MYTOKEN] }' })}${node('a', script, p.dir, '{ size: 1 }')}`);
    writeFileSync(join(p.dir, 'a.garble'), '');
    const first = await cli(['apply', '--yes', ...p.args], { env });
    expect(first.code).toBe(1);
    const second = await cli(['apply', '--yes', ...p.args], { env });
    expect(second.code, second.stdout + second.stderr).toBe(0);
    expect((await status(p.args)).get('a')).toMatchObject({ status: 'ready', outputs: STORED });
    const sent = requests(join(p.dir, 'a.requests'));
    // One create only: the next read was told it was interrupted, found the resource, and its outputs were taken.
    expect(sent.map((r) => [r.op, r.req.interrupted ?? false])).toEqual([
      ['read', false],
      ['create', false],
      ['read', true],
    ]);
    const third = await cli(['apply', '--yes', ...p.args], { env });
    expect(third.code).toBe(0);
    expect(third.stdout).toContain('0 created, 0 updated, 0 deleted, 1 unchanged');
  });
});
