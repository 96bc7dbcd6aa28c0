import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasAnsible } from '../backends/ansible/harness.ts';
import { cli, execGoalHead, execNode, shellResource, tempProject } from '../support/cli.ts';
import { trackDaemons } from '../support/daemon.ts';
import { warnSkipped } from '../support/skip.ts';

if (!hasAnsible) {
  warnSkipped(['SKIPPING the ansible case of the output-secret-reference test: ansible-playbook is not on PATH.', 'Install it to run it:  apt-get install -y ansible-core ansible']);
}

/*
 * An exec input and ansible extra vars read each `{ fromEnv }` / `{ fromFile }` in them as a secret,
 * at any depth. They did so after `${nodes…}` references were resolved: a producer that printed the
 * output `{"fromEnv":"AWS_SECRET_ACCESS_KEY"}` (data a command prints, not the goal author) had the
 * daemon read its own secret and hand it to the consumer's command. An output is data: such a map
 * put in by a reference fails the consumer, naming it and the reference, before any command of it runs.
 */
const ENV_CANARY = 'canary-ENV-7f3a91';
const FILE_CANARY = 'canary-FILE-5b2c07';
const env = { DESIREDSTATE_LOG_LEVEL: 'debug', DS_TEST_CANARY: ENV_CANARY };

/** Every byte the state directory holds, as one string. */
function stateBytes(state: string): string {
  return readdirSync(state, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name)).toString('latin1'))
    .join('\n');
}

/**
 * A project whose exec node `p` prints a plain `id`, a secret reference `cred` and one nested in a list
 * under a map (`nested`); each command's call is logged to calls.log, each create's stdin kept in `<id>.stdin`.
 */
function project(prefix: string): { p: ReturnType<typeof tempProject>; script: string } {
  const p = tempProject(prefix);
  writeFileSync(join(p.dir, 'canary.txt'), `${FILE_CANARY}\n`);
  writeFileSync(join(p.dir, 'outputs.json'), JSON.stringify({ id: 'p-1', cred: { fromEnv: 'DS_TEST_CANARY' }, nested: { files: [{ fromFile: join(p.dir, 'canary.txt') }] } }));
  const script = shellResource(
    p.dir,
    `req=$(cat)
echo "$1 $2" >> "$dir/calls.log"
out='{}'; if [ "$2" = p ]; then out=$(cat "$dir/outputs.json"); fi
case "$1" in
  read) if [ -f "$dir/$2.stdin" ]; then printf '{"exists":true,"state":{},"outputs":%s}\\n' "$out"; else echo '{"exists":false}'; fi ;;
  create) printf '%s' "$req" > "$dir/$2.stdin"; printf '{"outputs":%s}\\n' "$out" ;;
esac
`,
  );
  return { p, script };
}

const calls = (dir: string): string[] => readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n');

/** goals.yaml: `p`; `c`, which takes the secret reference `p` prints, whole; `ok`, which takes data; and the `extra` node lines. */
function writeGoals(p: ReturnType<typeof tempProject>, script: string, extra = ''): void {
  p.write('goals.yaml', `${execGoalHead()}${execNode('p', script, '{}')}${execNode('c', script, '{ key: "${nodes.p.outputs.cred}" }')}${execNode('ok', script, '{ id: "${nodes.p.outputs.id}" }')}${extra}`);
}

const daemons = trackDaemons();

describe('an output shaped like a secret reference, put into an exec input by a reference', () => {
  it('fails the consumer before any command of it runs, naming it, the field and the reference; no secret is read', async () => {
    const { p, script } = project('ds-output-secret-exec-');
    // `d` takes the one nested in a list in a map.
    writeGoals(p, script, execNode('d', script, '{ deep: "${nodes.p.outputs.nested}" }'));

    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    expect(apply.stdout).toContain('x c: permanent: node "c": spec.input.key: ${nodes.p.outputs.cred} puts a secret reference ({ fromEnv: … }) here: an output is data, never read as a secret reference');
    expect(apply.stdout).toContain('x d: permanent: node "d": spec.input.deep.files[0]: ${nodes.p.outputs.nested} puts a secret reference ({ fromFile: … }) here');
    expect(apply.stdout).toContain('write the { fromEnv: NAME } or { fromFile: path } in the goal');
    expect(apply.stdout).toContain('2 created, 0 updated, 0 deleted, 0 unchanged, 2 failed');
    // An output that is data still goes through.
    expect(readFileSync(join(p.dir, 'ok.stdin'), 'utf8')).toContain('"input":{"id":"p-1"}');
    // No command of the consumers ran, not even a read: nothing was handed either secret.
    expect(calls(p.dir).filter((c) => / (c|d)$/.test(c))).toEqual([]);
    expect(existsSync(join(p.dir, 'c.stdin'))).toBe(false);
    expect(existsSync(join(p.dir, 'd.stdin'))).toBe(false);

    // `plan` resolves the same way: the consumers are errors, their commands never run.
    const plan = await cli(['plan', ...p.args], { env });
    expect(plan.code).toBe(1);
    expect(plan.stdout).toContain('node "c": spec.input.key: ${nodes.p.outputs.cred} puts a secret reference');
    expect(calls(p.dir).filter((c) => / (c|d)$/.test(c))).toEqual([]);

    for (const text of [apply.stdout, apply.stderr, plan.stdout, plan.stderr, stateBytes(p.state), ...readdirSync(p.dir).filter((f) => f.endsWith('.stdin')).map((f) => readFileSync(join(p.dir, f), 'utf8'))]) {
      expect(text).not.toContain(ENV_CANARY);
      expect(text).not.toContain(FILE_CANARY);
    }
  });
});

// `$${` writes a literal `${`: a fromFile path written `<dir>/$${nodes.p.outputs.id}` names the file
// `<dir>/${nodes.p.outputs.id}`, spelled out. `validate` took it, but the rule that refuses a reference in
// the path (test/fixtures/bad/secret-file-reference) was in the secret reference's schema, which judges the
// resolved spec too: there the literal `${` read as a reference, and the node failed as `invalid-resolved-spec`.
describe('a literal ${ in the path of a secret reference an exec input writes', () => {
  it('passes validate and plan, and the command is given the secret of the file so named, masked in what apply prints', async () => {
    const { p, script } = project('ds-literal-secret-path-');
    writeFileSync(join(p.dir, '${nodes.p.outputs.id}'), `${FILE_CANARY}\n`);
    p.write('goals.yaml', `${execGoalHead()}${execNode('p', script, '{}')}${execNode('e', script, `{ pw: { fromFile: ${JSON.stringify(`${p.dir}/$\${nodes.p.outputs.id}`)} } }`)}`);

    const validate = await cli(['validate', ...p.args]);
    expect(validate.code, validate.stdout + validate.stderr).toBe(0);
    // `plan` looks for the secret where the apply reads it: it warned of `<dir>/$${nodes.p.outputs.id}`, which is no file.
    const plan = await cli(['plan', ...p.args], { env });
    expect(plan.stdout).toContain('Plan: 2 to create');
    expect(plan.stdout).not.toContain('cannot be read');
    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(0);
    expect(apply.stdout).toContain('2 created, 0 updated, 0 deleted, 0 unchanged, 0 failed');
    expect(readFileSync(join(p.dir, 'e.stdin'), 'utf8')).toContain(`"input":{"pw":"${FILE_CANARY}"}`);
    for (const text of [apply.stdout, apply.stderr, stateBytes(p.state)]) expect(text).not.toContain(FILE_CANARY);
  });
});

describe('the daemon, given the same goals', () => {
  it('fails the consumer the same way: no command of it runs, no secret is read', async () => {
    const { p, script } = project('ds-output-secret-daemon-');
    writeGoals(p, script);
    const d = daemons.start(['--listen', '127.0.0.1:0', ...p.args], { cwd: p.dir, env });
    const failed = await d.waitFor((l) => l.node === 'c' && (l.fault as { code?: string } | undefined)?.code === 'output-secret-reference', 30_000);
    expect((failed.fault as { message: string }).message).toContain('node "c": spec.input.key: ${nodes.p.outputs.cred} puts a secret reference');
    await d.waitFor((l) => l.msg === 'node created' && l.node === 'ok', 30_000);
    expect(calls(p.dir).filter((c) => c.endsWith(' c'))).toEqual([]);
    expect(existsSync(join(p.dir, 'c.stdin'))).toBe(false);
    for (const text of [d.stderr, stateBytes(p.state)]) expect(text).not.toContain(ENV_CANARY);
  });
});

describe.skipIf(!hasAnsible)('an output shaped like a secret reference, put into ansible extra vars by a reference', () => {
  it('fails the playbook node before ansible-playbook runs; no secret is read', async () => {
    const { p, script } = project('ds-output-secret-ansible-');
    writeFileSync(
      join(p.dir, 'site.yml'),
      `- hosts: all
  gather_facts: false
  tasks:
    - name: keep
      ansible.builtin.copy: { dest: "{{ dir }}/got.json", content: "{{ v | to_json }}" }
`,
    );
    p.write(
      'goals.yaml',
      `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ansible }
spec: { type: ansible, config: { timeout: 60s, cwd: ${JSON.stringify(p.dir)} } }
---
${execGoalHead()}${execNode('p', script, '{}')}    - id: web
      type: ansible.playbook
      backend: ansible
      spec: { playbook: site.yml, inventory: "localhost,", connection: local, extraVars: { dir: ${JSON.stringify(p.dir)}, v: "\${nodes.p.outputs.cred}" } }
`,
    );

    const apply = await cli(['apply', '--yes', ...p.args], { env });
    expect(apply.code, apply.stdout + apply.stderr).toBe(1);
    expect(apply.stdout).toContain('x web: permanent: node "web": spec.extraVars.v: ${nodes.p.outputs.cred} puts a secret reference ({ fromEnv: … }) here');
    expect(existsSync(join(p.dir, 'got.json'))).toBe(false);
    for (const text of [apply.stdout, apply.stderr, stateBytes(p.state)]) expect(text).not.toContain(ENV_CANARY);
  });
});
