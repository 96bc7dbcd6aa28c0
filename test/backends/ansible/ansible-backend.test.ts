import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ansibleBackendFactory, ansibleConfigSchema } from '../../../src/backends/ansible/index.ts';
import { DIFF_HIDDEN } from '../../../src/backends/ansible/observe.ts';
import { LEASE_TOKEN_ENV } from '../../../src/infra/index.ts';
import type { InfraBackend } from '../../../src/infra/index.ts';

/** The ansible backend, which has a health check. */
type AnsibleBackend = InfraBackend & Required<Pick<InfraBackend, 'health'>>;
import { processStat } from '../../../src/runtime/index.ts';
import type { Observation, Outputs, ProvisionResult } from '../../../src/runtime/index.ts';
import { compileText } from '../../support/compile.ts';
import { captureLogger } from '../../support/backend.ts';
import { backendContext, eventually, hasAnsible, isAlive, opContext, playbookNode } from './harness.ts';
import { warnSkipped } from '../../support/skip.ts';

if (!hasAnsible) {
  warnSkipped([
    'SKIPPING the ansible backend integration tests: ansible-playbook is not',
    'on PATH. Install it to run them:  apt-get install -y ansible-core ansible',
    '(ansible-core gives ansible-playbook; ansible gives the ansible.posix',
    'collection whose JSON callback the backend reads results through).',
  ]);
}

let dir: string;

const MANAGED = `
- hosts: all
  gather_facts: false
  tasks:
    - name: managed file
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "{{ body }}\\n"
        mode: "0644"
`;

const FAILING = `
- hosts: all
  gather_facts: false
  tasks:
    - name: harmless
      ansible.builtin.command: "true"
      changed_when: false
    - name: ignored failure
      ansible.builtin.command: /bin/false
      ignore_errors: true
      changed_when: false
    - name: break the build
      ansible.builtin.fail:
        msg: the disk is full
`;

const SLOW = `
- hosts: all
  gather_facts: false
  tasks:
    - name: slow
      ansible.builtin.shell: "echo $$ > {{ pidfile }}; sleep 600"
`;

function playbook(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return name;
}

function backend(config: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env): AnsibleBackend {
  return ansibleBackendFactory.create(ansibleConfigSchema().parse(config), backendContext(dir, env)) as AnsibleBackend;
}

const local = { inventory: 'localhost,', connection: 'local' };

async function observeOne(b: AnsibleBackend, n: ReturnType<typeof playbookNode>, recorded: Map<string, Outputs>): Promise<Observation> {
  return (await b.observe([n], opContext(recorded))).get(n.id)!;
}

function faultOf(r: ProvisionResult | Observation): { class: string; code: string | undefined; message: string } {
  if (r.status !== 'failed') throw new Error(`expected a failure, got ${JSON.stringify(r)}`);
  return { class: r.fault.class, code: r.fault.code, message: r.fault.message };
}

/**
 * The pid of a zombie (Linux): a child that exited under a parent that never reaps it (sh become `sleep`).
 * The parent is pushed to `parents`, to be killed. Undefined without /proc.
 */
async function zombiePid(parents: ChildProcess[]): Promise<number | undefined> {
  if (!existsSync('/proc/self/stat')) return undefined;
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  parents.push(parent);
  const [chunk] = (await once(parent.stdout, 'data')) as [Buffer];
  const pid = Number(chunk.toString('utf8').trim());
  expect(await eventually(() => processStat(pid)?.state === 'Z', 10_000)).toBe(true);
  return pid;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ds-ansible-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasAnsible)('ansible backend against localhost', () => {
  it('converges, shows no drift in check mode, reports a hand edit with the task name and a diff, and repairs it', async () => {
    const target = join(dir, 'managed.txt');
    const n = playbookNode('motd', { playbook: playbook('managed.yml', MANAGED), ...local, extraVars: { target, body: 'port = 8080' } });
    const b = backend();
    const recorded = new Map<string, Outputs>();

    // Never applied and not converged: absent, so the reconciler creates it.
    expect(await observeOne(b, n, recorded)).toEqual({ status: 'absent' });
    expect(existsSync(target)).toBe(false);

    const created = await b.create(n, opContext(recorded));
    expect(created).toEqual({ status: 'done', outputs: { ok: 1, changed: 1, skipped: 0, hosts: 1 } });
    if (created.status === 'done') recorded.set(n.id, created.outputs);
    expect(readFileSync(target, 'utf8')).toBe('port = 8080\n');

    expect(await observeOne(b, n, recorded)).toEqual({ status: 'upToDate', outputs: recorded.get(n.id) });

    writeFileSync(target, 'port = 9090\n');
    const drifted = await observeOne(b, n, recorded);
    expect(drifted.status).toBe('drifted');
    if (drifted.status !== 'drifted') return;
    expect(drifted.diffs).toHaveLength(1);
    expect(drifted.diffs[0]).toMatchObject({ path: 'task:managed file', desired: 'unchanged', actual: 'changed' });
    expect(drifted.diffs[0]?.detail).toContain('-port = 9090');
    expect(drifted.diffs[0]?.detail).toContain('+port = 8080');
    // Check mode changed nothing.
    expect(readFileSync(target, 'utf8')).toBe('port = 9090\n');

    expect(await b.update(n, drifted.diffs, opContext(recorded))).toMatchObject({ status: 'done', outputs: { changed: 1 } });
    expect(readFileSync(target, 'utf8')).toBe('port = 8080\n');
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });
  });

  it('a converged playbook never applied by us is up to date (adopted), not absent', async () => {
    const target = join(dir, 'adopted.txt');
    writeFileSync(target, 'already\n', { mode: 0o644 });
    const n = playbookNode('adopt', { playbook: playbook('adopt.yml', MANAGED), ...local, extraVars: { target, body: 'already' } });
    expect(await observeOne(backend(), n, new Map())).toMatchObject({ status: 'upToDate', outputs: { changed: 0 } });
  });

  it('extra vars are never templated: a Jinja expression arrives as literal text, at any depth', async () => {
    const target = join(dir, 'unsafe.txt');
    const literal = "{{ lookup('pipe','id') }}";
    const n = playbookNode('unsafe', {
      playbook: playbook(
        'unsafe.yml',
        `
- hosts: all
  gather_facts: false
  tasks:
    - name: write the literal
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "{{ myvar }}|{{ nested.list[0] }}|{{ nested.deep.x }}"
`,
      ),
      ...local,
      extraVars: { target, myvar: literal, nested: { list: ['{{ 7 * 6 }}'], deep: { x: '{% raw %}' } } },
    });
    expect(await backend().create(n, opContext())).toMatchObject({ status: 'done' });
    const text = readFileSync(target, 'utf8');
    expect(text).toBe(`${literal}|{{ 7 * 6 }}|{% raw %}`);
    expect(text).not.toContain('uid=');
  });

  it('extra vars reach the playbook exactly as written: keys YAML 1.1 would re-type (on, yes, no, 12:30, a date) stay strings, numbers stay numbers', async () => {
    const target = join(dir, 'echoed.json');
    const vars = {
      no: 'top-level-no',
      features: { on: 1, yes: 2, off: 3, Y: 4, '0x10': 5, '1_000': 6, null: 7, '012': 8, '12:30': 'lunch', '0b101': 'x', '2024-01-01': 9, "{{ lookup('pipe','id') }}": 10 },
      values: ['on', 'no', '12:30', '2024-01-01', '0x10', '~', '', "{{ lookup('pipe','id') }}", 1e21, 1e-7, 0.5, -3, 0, true, false, null],
    };
    const n = playbookNode('echo', {
      playbook: playbook(
        'echo.yml',
        `
- hosts: all
  gather_facts: false
  tasks:
    - name: echo the vars back
      ansible.builtin.copy:
        dest: ${JSON.stringify(target)}
        content: "{{ {'no': vars['no'] | default('UNDEFINED'), 'features': features, 'values': values, 'keys': features | dict2items | map(attribute='key') | list} | to_json }}"
`,
      ),
      ...local,
      extraVars: vars,
    });
    expect(await backend().create(n, opContext())).toMatchObject({ status: 'done' });
    expect(JSON.parse(readFileSync(target, 'utf8'))).toEqual({ ...vars, keys: Object.keys(vars.features) });
  });

  it('a failing task is a permanent fault naming the task and its msg; an ignored failure is not', async () => {
    const n = playbookNode('failing', { playbook: playbook('failing.yml', FAILING), ...local });
    const f = faultOf(await backend().create(n, opContext()));
    expect(f).toMatchObject({ class: 'permanent', code: 'task-failed' });
    expect(f.message).toContain('break the build');
    expect(f.message).toContain('the disk is full');
    expect(f.message).not.toContain('ignored failure');
  });

  it('a failing check after an apply is a fault too', async () => {
    const n = playbookNode('failing-check', { playbook: playbook('failing.yml', FAILING), ...local });
    const obs = await observeOne(backend(), n, new Map([['failing-check', { ok: 1 }]]));
    expect(faultOf(obs)).toMatchObject({ class: 'permanent', code: 'task-failed' });
  });

  it('an unreachable host is a transient fault', async () => {
    const n = playbookNode('unreachable', {
      playbook: playbook('managed-unreachable.yml', MANAGED),
      inventory: 'desiredstate-no-such-host.invalid,',
      extraVars: { target: join(dir, 'never.txt'), body: 'x' },
    });
    expect(faultOf(await backend().create(n, opContext()))).toMatchObject({ class: 'transient', code: 'host-unreachable' });
  });

  // Stand-ins for what a host refusing a login or a become prints, so that real ansible-playbook, through its own
  // ssh connection plugin and become plugins, reports each as it does against a real host.
  const FAKES: Record<string, string> = {
    // ssh whose login every method failed (the repro: a key the host does not accept).
    'ssh-refused': 'echo "app@h1: Permission denied (publickey,password)." >&2\nexit 255',
    // ssh that runs the remote command here, as if logged in.
    'ssh-here': 'for last; do :; done\nexec /bin/sh -c "$last"',
    // sshpass told a wrong password (its exit status 5), as ssh prints it; with no arguments, Ansible's probe for it.
    sshpass: '[ $# -eq 0 ] && exit 0\necho "Permission denied, please try again." >&2\nexit 5',
    // sudo that, as the real one, refuses -n (no password given) and a wrong password at its -p prompt.
    sudo: [
      'prompt=Password:',
      'while [ $# -gt 0 ]; do case "$1" in -n) echo "sudo: a password is required" >&2; exit 1;; -p) prompt="$2"; shift;; esac; shift; done',
      'printf "%s" "$prompt"; read pw; echo "Sorry, try again." >&2; printf "%s" "$prompt"; read pw',
      'echo "sudo: 1 incorrect password attempt" >&2; exit 1',
    ].join('\n'),
  };

  it.each([
    { name: 'ssh refusing every login method', host: 'ansible_connection=ssh ansible_ssh_executable={ssh-refused}', code: 'login-failed', says: 'Permission denied (publickey,password)' },
    { name: 'a wrong SSH password (sshpass)', host: 'ansible_connection=ssh ansible_ssh_executable={ssh-here} ansible_password=wrong', code: 'login-failed', says: 'Invalid/incorrect password' },
    { name: 'become with no password (sudo asks one)', host: 'ansible_connection=ssh ansible_ssh_executable={ssh-here} ansible_become=true ansible_become_exe={sudo}', code: 'become-failed', says: 'Missing sudo password' },
    { name: 'a wrong become password', host: 'ansible_connection=ssh ansible_ssh_executable={ssh-here} ansible_become=true ansible_become_exe={sudo} ansible_become_password=wrong', code: 'become-failed', says: 'Incorrect sudo password' },
    // Local: Ansible skips a become to the user it already is, so become another.
    { name: 'become under local with no password', host: 'ansible_connection=local ansible_become=true ansible_become_user=nobody ansible_become_exe={sudo}', code: 'become-failed', says: 'sudo: a password is required' },
  ])('$name is an auth fault with a hint (held after its attempts, not retried for ever)', async ({ name, host, code, says }) => {
    const fakes = join(dir, 'fakes');
    mkdirSync(fakes, { recursive: true });
    for (const [file, body] of Object.entries(FAKES)) writeFileSync(join(fakes, file), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    const inventory = join(dir, `auth-${name.replace(/\W+/g, '-')}.ini`);
    writeFileSync(inventory, `h1 ansible_host=h1.example ansible_python_interpreter=python3 ansible_pipelining=true ${host.replace(/\{([\w-]+)\}/g, (_, f: string) => join(fakes, f))}\n`);
    const n = playbookNode('auth', { playbook: playbook('ping.yml', '- hosts: all\n  gather_facts: false\n  tasks: [ { name: ping, ansible.builtin.ping: {} } ]\n'), inventory });
    const env = { ...process.env, PATH: `${fakes}:${process.env.PATH ?? ''}` };
    const r = await backend({}, env).create(n, opContext());
    expect(faultOf(r)).toMatchObject({ class: 'auth', code });
    expect(faultOf(r).message).toContain(says);
    expect(r.status === 'failed' ? r.fault.hint : undefined).toMatch(/retry the node/);
  });

  it.each([
    { name: 'a syntax error in the playbook', file: 'broken.yml', text: '- hosts: all\n  tasks: [ {name: x, no_such_module: {}} ]\n' },
    { name: 'a playbook that does not exist', file: undefined, text: '' },
    { name: 'a limit that matches no host', file: 'managed-limit.yml', text: MANAGED, limit: 'no-such-host' },
  ])('$name is a permanent fault carrying ansible-playbook\'s error', async ({ file, text, limit }) => {
    const name = file === undefined ? 'missing.yml' : playbook(file, text);
    const f = faultOf(await backend().create(playbookNode('bad', { playbook: name, ...local, limit }), opContext()));
    expect(f.class).toBe('permanent');
    expect(f.code).toMatch(/^ansible-exit-\d+$/);
    expect(f.message).toContain('ERROR!');
  });

  it('a timeout kills the whole process group and is a transient fault, leaving no module payload in the temp dir', async () => {
    const payloads = (): string[] => readdirSync(tmpdir()).filter((f) => /^ansible_.*_payload_/.test(f));
    const payloadsBefore = new Set(payloads());
    const pidfile = join(dir, 'slow.pid');
    const n = playbookNode('slow', { playbook: playbook('slow.yml', SLOW), ...local, extraVars: { pidfile } });
    // The timeout leaves ansible-playbook time to start and reach the task on a loaded machine; the
    // task sleeps far longer than the test may run, so only the timeout can end the run in time.
    const timeoutS = 15;
    const pending = backend({ timeout: `${timeoutS}s` }).create(n, opContext());
    // The task's shell is a grandchild of ansible-playbook; note its pid while it sleeps.
    expect(await eventually(() => existsSync(pidfile) && readFileSync(pidfile, 'utf8').trim() !== '', timeoutS * 1000)).toBe(true);
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    try {
      expect(isAlive(pid)).toBe(true);
      expect(faultOf(await pending)).toMatchObject({ class: 'transient', code: 'timeout' });
      expect(await eventually(() => !isAlive(pid))).toBe(true);
    } finally {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    // The killed module could not remove its AnsiballZ payload: it was in the run's own temp dir, removed with it.
    expect(payloads().filter((f) => !payloadsBefore.has(f))).toEqual([]);
  }, 90_000);

  it('leaves no temp files behind (extra vars file, ansible temp dirs)', async () => {
    // This process's run dirs only: other test files (and other test runs) run playbooks at the same time.
    const ours = `desiredstate-ansible-${process.pid}-`;
    const before = new Set(readdirSync(tmpdir()).filter((f) => f.startsWith(ours)));
    const n = playbookNode('tidy', { playbook: playbook('managed-tidy.yml', MANAGED), ...local, extraVars: { target: join(dir, 'tidy.txt'), body: 'x' } });
    await backend().create(n, opContext());
    const after = readdirSync(tmpdir()).filter((f) => f.startsWith(ours) && !before.has(f));
    expect(after).toEqual([]);
  });

  it('a playbook check mode cannot simulate (command tasks) is absent before its first apply, not adopted; then steady', async () => {
    const target = join(dir, 'command-ran');
    const text = `
- hosts: all
  gather_facts: false
  tasks:
    - name: run a command
      ansible.builtin.command: "touch {{ target }}"
    - name: never
      ansible.builtin.debug: { msg: skipped by its condition }
      when: false
`;
    const n = playbookNode('command', { playbook: playbook('command.yml', text), ...local, extraVars: { target } });
    const b = backend();
    const recorded = new Map<string, Outputs>();
    expect(await observeOne(b, n, recorded)).toEqual({ status: 'absent' });
    const created = await b.create(n, opContext(recorded));
    expect(created.status).toBe('done');
    if (created.status === 'done') recorded.set(n.id, created.outputs);
    expect(existsSync(target)).toBe(true);
    // Once applied, what check mode cannot see is not drift: the steady state stays steady.
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });
  });

  it.each([
    {
      name: 'converged, every task checked: adopted',
      text: MANAGED,
      prepare: (target: string) => writeFileSync(target, 'x\n', { mode: 0o644 }),
      expected: { status: 'upToDate' },
    },
    {
      name: 'not converged, every task checked: absent, applied again (each task converges, none runs twice)',
      text: MANAGED,
      prepare: () => undefined,
      expected: { status: 'absent' },
    },
    {
      name: 'a task check mode cannot simulate (shell), the rest converged: held, never run again unasked',
      text: `${MANAGED}    - name: initialise\n      ansible.builtin.shell: "true"\n`,
      prepare: (target: string) => writeFileSync(target, 'x\n', { mode: 0o644 }),
      expected: { status: 'indeterminate', reason: expect.stringContaining('check mode cannot tell whether its tasks "initialise" (command, shell …) ran') },
    },
    {
      name: 'a failing check: held, since it tells nothing of what the run did',
      text: FAILING,
      prepare: () => undefined,
      expected: { status: 'indeterminate', reason: expect.stringContaining('its check fails (task "break the build" failed on localhost: the disk is full)') },
    },
  ])('after a run cut short (a crash, a timeout), a playbook never applied: $name', async ({ text, prepare, expected }) => {
    const target = join(dir, `interrupted-${expected.status}-${text.length}.txt`);
    prepare(target);
    const n = playbookNode('cut-short', { playbook: playbook(`interrupted-${text.length}.yml`, text), ...local, extraVars: { target, body: 'x' } });
    const b = backend();
    const obs = (await b.observe([n], { ...opContext(), interrupted: (id) => id === n.id })).get(n.id)!;
    expect(obs).toMatchObject(expected);
    if (obs.status === 'indeterminate') {
      expect(obs.reason).toMatch(/^a run of the playbook was cut short .*; a retry runs the whole playbook again$/);
      // Not cut short (or released by retry): not held.
      expect((await b.observe([n], opContext())).get(n.id)).toMatchObject({ status: 'absent' });
    }
  });

  it('an inventory that does not exist is a permanent fault, never a run against the implicit localhost', async () => {
    const target = join(dir, 'implicit-localhost.txt');
    const n = playbookNode('typo', { playbook: playbook('implicit.yml', MANAGED.replace('hosts: all', 'hosts: localhost')), inventory: 'no-such-inventory.ini', extraVars: { target, body: 'x' } });
    const f = faultOf(await backend().create(n, opContext()));
    expect(f).toMatchObject({ class: 'permanent', code: 'ansible-exit-1' });
    expect(f.message).toContain('no-such-inventory.ini');
    expect(existsSync(target)).toBe(false);
  });

  it('a play that matches no host (hosts and limit do not meet) is a fault, never up to date', async () => {
    const text = MANAGED.replace('hosts: all', 'hosts: webservers');
    const n = playbookNode('nohosts', { playbook: playbook('nohosts.yml', text), ...local, extraVars: { target: join(dir, 'nohosts.txt'), body: 'x' } });
    const b = backend();
    expect(faultOf(await observeOne(b, n, new Map()))).toMatchObject({ class: 'permanent', code: 'no-hosts' });
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'no-hosts' });
  });

  it('a report larger than maxOutputBytes is a permanent bad-output fault', async () => {
    const text = `
- hosts: all
  gather_facts: false
  tasks:
    - name: chatty
      ansible.builtin.shell: "head -c 200000 /dev/zero | tr '\\\\0' x"
      changed_when: false
`;
    const n = playbookNode('chatty', { playbook: playbook('chatty.yml', text), ...local });
    expect(faultOf(await backend({ maxOutputBytes: 65536 }).create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'bad-output' });
  });

  it('a secret reference in extraVars reaches the playbook as its value, and the value never reaches a drift report or a fault', async () => {
    const env = { ...process.env, DS_TEST_PW: 'pw-S3CRET-4711' };
    const target = join(dir, 'secret.conf');
    const n = playbookNode('secret', { playbook: playbook('secret.yml', MANAGED), ...local, extraVars: { target, body: { fromEnv: 'DS_TEST_PW' } } });
    const b = backend({}, env);
    const recorded = new Map<string, Outputs>();
    const created = await b.create(n, opContext(recorded));
    expect(created.status).toBe('done');
    if (created.status === 'done') recorded.set(n.id, created.outputs);
    expect(readFileSync(target, 'utf8')).toBe('pw-S3CRET-4711\n');
    writeFileSync(target, 'hand edit\n');
    const drifted = await observeOne(b, n, recorded);
    expect(drifted.status).toBe('drifted');
    expect(JSON.stringify(drifted)).not.toContain('S3CRET');
    // A playbook given secrets shows no diff: the current value would be masked in it, not an earlier one.
    expect(drifted).toMatchObject({ diffs: [{ detail: DIFF_HIDDEN }] });
    // Rotated: the file still holds the old value, which a diff would show as the line it replaces.
    if (created.status === 'done') expect(await b.update(n, [], opContext(recorded))).toMatchObject({ status: 'done' });
    const rotated = await observeOne(backend({}, { ...env, DS_TEST_PW: 'pw-N3W-0815' }), n, recorded);
    expect(rotated).toMatchObject({ status: 'drifted', diffs: [{ detail: DIFF_HIDDEN }] });
    expect(JSON.stringify(rotated)).not.toMatch(/S3CRET|N3W/);
    const failing = `
- hosts: all
  gather_facts: false
  tasks:
    - name: quote it
      ansible.builtin.fail: { msg: "rejected {{ body }}" }
`;
    const bad = playbookNode('secret-fail', { playbook: playbook('secret-fail.yml', failing), ...local, extraVars: { body: { fromEnv: 'DS_TEST_PW' } } });
    const f = faultOf(await b.create(bad, opContext()));
    expect(f.message).toBe('task "quote it" failed on localhost: rejected <secret>');
    // Before its first apply a failing check is "not applied": logged, and the log does not quote the secret either.
    const logs = captureLogger();
    const firstCheck = (await b.observe([bad], { ...opContext(), log: logs.log })).get(bad.id)!;
    expect(firstCheck.status).toBe('absent');
    expect(logs.text()).toContain('playbook check failed before first apply');
    expect(logs.lines.filter((l) => l.includes('S3CRET'))).toEqual([]);
    const unset = faultOf(await backend().create(bad, opContext()));
    expect(unset).toMatchObject({ class: 'permanent', code: 'DS_SECRET_UNAVAILABLE' });
    expect(unset.message).toContain('DS_TEST_PW');
  });

  it('a task name quoting a secret extra var is never logged unmasked: not before the first apply, not at an update', async () => {
    const env = { ...process.env, DS_TEST_DBPW: 'dbpw-S3CRET-4711' };
    const text = `
- hosts: all
  gather_facts: false
  tasks:
    - name: "configure db with {{ dbpw }}"
      ansible.builtin.copy: { dest: "{{ target }}", content: "password={{ dbpw }}\\n" }
    - name: "migrate with {{ dbpw }}"
      ansible.builtin.command: "true"
`;
    const target = join(dir, 'named-secret.conf');
    const n = playbookNode('named-secret', { playbook: playbook('named-secret.yml', text), ...local, extraVars: { target, dbpw: { fromEnv: 'DS_TEST_DBPW' } } });
    const b = backend({}, env);
    const logs = captureLogger();
    // Not converged: the tasks that would change are logged, masked.
    expect((await b.observe([n], { ...opContext(), log: logs.log })).get(n.id)).toEqual({ status: 'absent' });
    expect(logs.text()).toContain('configure db with <secret>');
    const created = await b.create(n, { ...opContext(), log: logs.log });
    expect(created.status).toBe('done');
    // Converged, but check mode cannot simulate the command: the task it skips is logged, masked.
    expect((await b.observe([n], { ...opContext(), log: logs.log })).get(n.id)).toEqual({ status: 'absent' });
    expect(logs.text()).toContain('migrate with <secret>');
    // An update logs the paths it corrects, which name tasks.
    const diffs = [{ path: 'task:configure db with dbpw-S3CRET-4711', desired: 'unchanged', actual: 'changed' }];
    expect(await b.update(n, diffs, { ...opContext(), log: logs.log })).toMatchObject({ status: 'done' });
    expect(logs.text()).toContain('task:configure db with <secret>');
    expect(logs.lines.filter((l) => l.includes('S3CRET'))).toEqual([]);
  });

  it('a secret in an allowlisted variable that a task quotes never reaches the fault', async () => {
    const env = { ...process.env, DS_TEST_TOKEN: 'tok-S3CRET-4711' };
    const text = `
- hosts: all
  gather_facts: false
  tasks:
    - name: boom
      ansible.builtin.fail: { msg: "token {{ lookup('env', 'DS_TEST_TOKEN') }} rejected" }
`;
    const n = playbookNode('env-secret', { playbook: playbook('env-secret.yml', text), ...local });
    const f = faultOf(await backend({ env: ['PATH', 'HOME', 'LANG', 'DS_TEST_TOKEN'] }, env).create(n, opContext()));
    expect(f.message).toBe('task "boom" failed on localhost: token <secret> rejected');
  });

  // What ansible-playbook is handed (the variable) and what its ssh connection plugin makes of it (the option:
  // env, then ansible.cfg, then the default True). A local connection needs no host key, so a probe can run here.
  const HOST_KEY_PROBE = `
- hosts: all
  gather_facts: false
  tasks:
    - name: record host key checking
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "env={{ lookup('env', 'ANSIBLE_HOST_KEY_CHECKING') }} ssh={{ lookup('config', 'host_key_checking', plugin_type='connection', plugin_name='ssh') }}"
`;
  const withHostKeyVars = ['PATH', 'HOME', 'LANG', 'ANSIBLE_HOST_KEY_CHECKING', 'ANSIBLE_SSH_HOST_KEY_CHECKING'];

  it.each([
    { name: 'by default nothing is forced: Ansible checks host keys', config: {}, env: {}, expected: 'env= ssh=True' },
    {
      name: 'a variable that is not allowlisted does not reach ansible-playbook',
      config: {},
      env: { ANSIBLE_HOST_KEY_CHECKING: 'false' },
      expected: 'env= ssh=True',
    },
    { name: 'hostKeyChecking: false turns checking off', config: { hostKeyChecking: false }, env: {}, expected: 'env=false ssh=False' },
    {
      name: 'without hostKeyChecking, an allowlisted ANSIBLE_HOST_KEY_CHECKING is the operator\'s and is passed as it is',
      config: { env: withHostKeyVars },
      env: { ANSIBLE_HOST_KEY_CHECKING: 'False' },
      expected: 'env=False ssh=False',
    },
    {
      name: 'hostKeyChecking: true wins over allowlisted variables, under each of Ansible\'s names for the setting',
      config: { hostKeyChecking: true, env: withHostKeyVars },
      env: { ANSIBLE_HOST_KEY_CHECKING: 'false', ANSIBLE_SSH_HOST_KEY_CHECKING: 'false' },
      expected: 'env=true ssh=True',
    },
    { name: 'without hostKeyChecking, an ansible.cfg in the working directory is honoured', config: { cwd: 'with-cfg' }, env: {}, expected: 'env= ssh=False' },
    { name: 'hostKeyChecking: true wins over an ansible.cfg', config: { cwd: 'with-cfg', hostKeyChecking: true }, env: {}, expected: 'env=true ssh=True' },
  ])('host key checking: $name', async ({ name, config, env, expected }) => {
    mkdirSync(join(dir, 'with-cfg'), { recursive: true });
    writeFileSync(join(dir, 'with-cfg', 'ansible.cfg'), '[defaults]\nhost_key_checking = False\n');
    const target = join(dir, `host-keys-${name.replace(/\W+/g, '-')}.txt`);
    const n = playbookNode('host-keys', { playbook: join(dir, playbook('host-keys.yml', HOST_KEY_PROBE)), ...local, extraVars: { target } });
    const daemonEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ANSIBLE_')));
    expect(await backend(config, { ...daemonEnv, ...env }).create(n, opContext())).toMatchObject({ status: 'done' });
    expect(readFileSync(target, 'utf8')).toBe(expected);
  });

  it('health is healthy with ansible-playbook installed', async () => {
    expect(await backend().health({ signal: new AbortController().signal, log: backendContext(dir).log })).toEqual({ status: 'healthy' });
  });
});

describe('ansible backend without ansible', () => {
  it('a missing ansible-playbook is a permanent fault with an install hint', async () => {
    const n = playbookNode('x', { playbook: 'site.yml' });
    const r = await backend({ ansiblePlaybook: join(dir, 'no-such-ansible-playbook') }).create(n, opContext());
    expect(r.status === 'failed' ? r.fault : r).toMatchObject({ class: 'permanent', code: 'spawn-failed' });
    const health = await backend({ ansiblePlaybook: join(dir, 'no-such-ansible-playbook') }).health({
      signal: new AbortController().signal,
      log: backendContext(dir).log,
    });
    expect(health.status).toBe('unhealthy');
  });

  // It said only `spawn …/no-such-ansible-playbook ENOENT`.
  it('health with an ansiblePlaybook that is not there says so, with what to do, as the script backend\'s generator check does', async () => {
    const program = join(dir, 'nonexistent', 'ansible-playbook');
    const health = await backend({ ansiblePlaybook: program }).health({ signal: new AbortController().signal, log: backendContext(dir).log });
    expect(health).toEqual({
      status: 'unhealthy',
      message: `ansible-playbook cannot be run: ${program} does not exist; install ansible-core (apt-get install ansible-core) or set the backend config ansiblePlaybook`,
    });
  });

  it('the run dirs of a process killed mid-run are removed before the next run: they keep its extra-vars file, secrets included', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ds-ansible-tmp-'));
    const parents: ChildProcess[] = [];
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const gone = spawnSync('true').pid;
      const stale = join(tmp, `desiredstate-ansible-${gone}-aB3dEf`);
      mkdirSync(join(stale, 'local'), { recursive: true });
      writeFileSync(join(stale, 'extra-vars.yml'), 'token: !unsafe "s3cret"\n');
      // A daemon killed -9 whose parent has not reaped it yet (a zombie): gone too.
      const zombie = await zombiePid(parents);
      if (zombie !== undefined) mkdirSync(join(tmp, `desiredstate-ansible-${zombie}-zOmBie`));
      // A run of a live process (another daemon, a plan), and a dir of unknown origin: left alone.
      const running = join(tmp, `desiredstate-ansible-${process.pid}-gH5iJk`);
      mkdirSync(running);
      const unnamed = join(tmp, 'desiredstate-ansible-lM7nOp');
      mkdirSync(unnamed);
      // A run that goes on without the process killed -9 that started it (its successor waits for it):
      // its Ansible temp files are in use. One whose run is over too is removed.
      const token = randomUUID();
      const goesOn = join(tmp, `desiredstate-ansible-${gone}-${token}-qR8sTu`);
      mkdirSync(join(goesOn, 'local'), { recursive: true });
      const over = join(tmp, `desiredstate-ansible-${gone}-${randomUUID()}-vW9xYz`);
      mkdirSync(join(over, 'local'), { recursive: true });
      const run = spawn('sleep', ['60'], { env: { ...process.env, [LEASE_TOKEN_ENV]: token }, stdio: 'ignore' });
      parents.push(run);
      const b = backend({ ansiblePlaybook: join(dir, 'no-such-ansible-playbook') });
      const r = await b.create(playbookNode('x', { playbook: 'site.yml' }), opContext());
      expect(r.status).toBe('failed');
      expect(readdirSync(tmp).sort()).toEqual([basename(running), basename(unnamed), basename(goesOn)].sort());
      // That run over, the next run of the same process removes its dir: it is not kept for good.
      const ended = once(run, 'exit');
      run.kill('SIGKILL');
      await ended;
      await b.create(playbookNode('x', { playbook: 'site.yml' }), opContext());
      expect(readdirSync(tmp).sort()).toEqual([basename(running), basename(unnamed)].sort());
    } finally {
      for (const parent of parents) parent.kill('SIGKILL');
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('delete is a permanent fault: a playbook cannot be un-run', async () => {
    const r = await backend().delete(playbookNode('x', { playbook: 'site.yml' }), opContext());
    expect(r.status === 'failed' ? r.fault : r).toMatchObject({ class: 'permanent', code: 'not-deletable' });
  });

  it.each([
    { name: 'a quoted string', value: '"false"', got: 'got the string "false" (goal files are YAML 1.2: only true and false are booleans; "false" is a string)' },
    { name: 'a YAML 1.1 boolean', value: 'no', got: 'got the string "no" (goal files are YAML 1.2: only true and false are booleans; "no" is a string)' },
    { name: 'a number', value: '0', got: 'got the number 0' },
  ])('hostKeyChecking is true or false: $name is a config error at the value', ({ value, got }) => {
    const r = compileText(`apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: a }\nspec:\n  type: ansible\n  config:\n    hostKeyChecking: ${value}\n`);
    expect(r.lines).toEqual([`goals/test.yaml:7:22: error invalid-type: spec.config.hostKeyChecking: expected true or false, ${got}`]);
  });

  it.each([
    { name: 'a variable name that is not an identifier', raw: { playbook: 'p.yml', extraVars: { 'bad-name': 1 } } },
    { name: 'an unknown field', raw: { playbook: 'p.yml', extra_vars: {} } },
    { name: 'an empty inventory list', raw: { playbook: 'p.yml', inventory: [] } },
  ])('the spec rejects $name', ({ raw }) => {
    expect(() => playbookNode('x', raw)).toThrow();
  });
});
