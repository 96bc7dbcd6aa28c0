import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execBackendFactory, execConfigSchema } from '../../../src/backends/exec/index.ts';
import type { InfraBackend } from '../../../src/infra/index.ts';
import type { Observation, ObservationMemo, OperationContext, Outputs, ProvisionResult } from '../../../src/runtime/index.ts';
import { backendContext, eventually, genericNode, isAlive, opContext } from './harness.ts';

// Real commands in a temp dir: small node and sh scripts speaking the exec protocol.
const node = process.execPath;
let dir: string;

/** A resource kept in a JSON file; logs every request it receives next to it. */
const RESOURCE = `
import { appendFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
const [file, op] = process.argv.slice(2);
const req = JSON.parse(readFileSync(0, 'utf8'));
appendFileSync(file + '.log', JSON.stringify({ op, req }) + '\\n');
if (op === 'read') {
  if (!existsSync(file)) console.log(JSON.stringify({ exists: false }));
  else console.log(JSON.stringify({ exists: true, state: JSON.parse(readFileSync(file, 'utf8')), outputs: { path: file } }));
} else if (op === 'create' || op === 'update') {
  writeFileSync(file, JSON.stringify(req.input));
  console.log(JSON.stringify({ outputs: { path: file, by: op } }));
} else if (op === 'delete') {
  rmSync(file, { force: true });
}
`;

/** Prints its arguments and two environment variables as outputs. */
const ECHO = `
const out = { argv: JSON.stringify(process.argv.slice(2)), keep: process.env.DS_TEST_KEEP ?? null, hidden: process.env.DS_TEST_HIDDEN ?? null };
console.log(JSON.stringify({ outputs: out }));
`;

function script(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

function backend(config: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env): InfraBackend {
  return execBackendFactory.create(execConfigSchema().parse(config), backendContext(dir, env));
}

async function observeOne(b: InfraBackend, n: ReturnType<typeof genericNode>, recorded = new Map<string, Outputs>()): Promise<Observation> {
  return (await b.observe([n], opContext(recorded))).get(n.id)!;
}

function faultOf(r: ProvisionResult | Observation): { class: string; code: string | undefined; message: string } {
  if (r.status !== 'failed') throw new Error(`expected a failure, got ${r.status}`);
  return { class: r.fault.class, code: r.fault.code, message: r.fault.message };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ds-exec-test-'));
  script('resource.mjs', RESOURCE);
  script('echo.mjs', ECHO);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('exec backend: protocol round trip', () => {
  it('reads absent, creates, reads up to date, sees out-of-band drift on input.x, updates, deletes', async () => {
    const state = join(dir, 'rt.json');
    const cmd = (op: string): string[] => [node, './resource.mjs', state, op];
    const n = genericNode('bucket-logs', {
      commands: { read: cmd('read'), create: cmd('create'), update: cmd('update'), delete: cmd('delete') },
      input: { x: 1, tags: { team: 'data' } },
    });
    const b = backend();
    const recorded = new Map<string, Outputs>();

    expect(await observeOne(b, n, recorded)).toEqual({ status: 'absent' });

    const created = await b.create(n, opContext(recorded));
    expect(created).toEqual({ status: 'done', outputs: { path: state, by: 'create' } });
    if (created.status === 'done') recorded.set(n.id, created.outputs);

    // The read's outputs are laid over those create recorded (which the next request must still carry).
    expect(await observeOne(b, n, recorded)).toEqual({ status: 'upToDate', outputs: { path: state, by: 'create' } });

    // Changed out of band: x differs, tags are equal with another key order.
    writeFileSync(state, JSON.stringify({ tags: { team: 'data' }, x: 2, extra: true }));
    const drifted = await observeOne(b, n, recorded);
    expect(drifted).toEqual({ status: 'drifted', diffs: [{ path: 'input.x', desired: 1, actual: 2 }], outputs: { path: state, by: 'create' } });

    const updated = await b.update(n, drifted.status === 'drifted' ? drifted.diffs : [], opContext(recorded));
    expect(updated).toEqual({ status: 'done', outputs: { path: state, by: 'update' } });
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });

    expect(await b.delete(n, opContext(recorded))).toEqual({ status: 'done', outputs: {} });
    expect(await observeOne(b, n, recorded)).toEqual({ status: 'absent' });

    // Every command got {id, input, outputs}: null before the first create, the recorded ones after.
    const requests = readFileSync(`${state}.log`, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { op: string; req: unknown });
    expect(requests[0]).toEqual({ op: 'read', req: { id: 'bucket-logs', input: { x: 1, tags: { team: 'data' } }, outputs: null } });
    expect(requests.find((r) => r.op === 'update')?.req).toEqual({
      id: 'bucket-logs',
      input: { x: 1, tags: { team: 'data' } },
      outputs: { path: state, by: 'create' },
    });
  });

  it('an update that prints no outputs keeps those create recorded: the next read still finds the resource by its id', async () => {
    // A cloud API's resource: create returns the id the server made; read finds it by that id only.
    const store = join(dir, 'by-id');
    const byId = script(
      'by-id.mjs',
      `import { existsSync, readFileSync, writeFileSync } from 'node:fs';
const [store, op] = process.argv.slice(2);
const req = JSON.parse(readFileSync(0, 'utf8'));
const file = (id) => store + '-' + id + '.json';
if (op === 'read') {
  const id = req.outputs?.id;
  console.log(JSON.stringify(id !== undefined && existsSync(file(id)) ? { exists: true, state: JSON.parse(readFileSync(file(id), 'utf8')) } : { exists: false }));
} else if (op === 'create') {
  writeFileSync(file('r-1'), JSON.stringify(req.input));
  console.log(JSON.stringify({ outputs: { id: 'r-1' } }));
} else if (op === 'update') {
  writeFileSync(file(req.outputs.id), JSON.stringify(req.input));
  console.log(JSON.stringify({ outputs: {} }));
}
`,
    );
    const cmd = (op: string): string[] => [node, byId, store, op];
    const n = genericNode('vm', { commands: { read: cmd('read'), create: cmd('create'), update: cmd('update') }, input: { size: 'small' } });
    const b = backend();
    const recorded = new Map<string, Outputs>();
    const created = await b.create(n, opContext(recorded));
    if (created.status === 'done') recorded.set(n.id, created.outputs);
    writeFileSync(`${store}-r-1.json`, JSON.stringify({ size: 'large' }));
    const drifted = await observeOne(b, n, recorded);
    expect(drifted).toMatchObject({ status: 'drifted', outputs: { id: 'r-1' } });

    const updated = await b.update(n, drifted.status === 'drifted' ? drifted.diffs : [], opContext(recorded));
    expect(updated).toEqual({ status: 'done', outputs: { id: 'r-1' } });
    if (updated.status === 'done') recorded.set(n.id, updated.outputs);
    expect(await observeOne(b, n, recorded)).toEqual({ status: 'upToDate', outputs: { id: 'r-1' } });
  });

  it('compares each input value as a whole JSON value: a list, null or a nested map under a key', async () => {
    const state = join(dir, 'values.json');
    const cmd = (op: string): string[] => [node, './resource.mjs', state, op];
    const input = { zones: ['a', 'b'], owner: null, limits: { cpu: 2, tags: ['x'] } };
    const n = genericNode('values', { commands: { read: cmd('read'), create: cmd('create') }, input });
    const b = backend();
    const recorded = new Map<string, Outputs>();
    const created = await b.create(n, opContext(recorded));
    if (created.status === 'done') recorded.set(n.id, created.outputs);
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });

    // Out of band: the list reordered, null filled in, a nested list grown; one diff per key of input.
    writeFileSync(state, JSON.stringify({ zones: ['b', 'a'], owner: 'ops', limits: { tags: ['x', 'y'], cpu: 2 } }));
    expect(await observeOne(b, n, recorded)).toEqual({
      status: 'drifted',
      diffs: [
        { path: 'input.zones', desired: ['a', 'b'], actual: ['b', 'a'] },
        { path: 'input.owner', desired: null, actual: 'ops' },
        { path: 'input.limits', desired: { cpu: 2, tags: ['x'] }, actual: { tags: ['x', 'y'], cpu: 2 } },
      ],
      outputs: { path: state, by: 'create' },
    });
  });

  it('observes many nodes at once, one entry each', async () => {
    const nodes = Array.from({ length: 7 }, (_, i) =>
      genericNode(`n${i}`, { commands: { read: [node, './resource.mjs', join(dir, `many-${i}.json`), 'read'], create: ['true'] } }),
    );
    const observed = await backend().observe(nodes, opContext());
    expect([...observed.keys()].sort()).toEqual(nodes.map((n) => n.id).sort());
    expect([...observed.values()].every((o) => o.status === 'absent')).toBe(true);
  });
});

// GOAL-FORMAT.md: create and update print {"outputs": {…}}, with no limit on the values' types. A
// list or map was refused as bad output: the create had made its resource, and the read that prints
// the same outputs failed the same way on every pass, the node stuck for ever.
describe('exec backend: outputs that are lists and maps', () => {
  /** Creates a file; prints outputs with a list, a map and the allowlisted token inside a list; logs each request. */
  const STRUCTURED = `
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
const [file, op] = process.argv.slice(2);
const req = JSON.parse(readFileSync(0, 'utf8'));
appendFileSync(file + '.log', JSON.stringify({ op, req }) + '\\n');
const outputs = { rid: 'r-1', tags: ['a', 'b'], ep: { host: 'h', ports: [80, 443] }, keys: ['plain', process.env.DS_TEST_TOKEN] };
if (op === 'read') console.log(JSON.stringify(existsSync(file) ? { exists: true, state: JSON.parse(readFileSync(file, 'utf8')), outputs } : { exists: false }));
else { writeFileSync(file, JSON.stringify(req.input)); console.log(JSON.stringify({ outputs })); }
`;
  const TOKEN = 'tok-4711-secret';
  const expected = { rid: 'r-1', tags: ['a', 'b'], ep: { host: 'h', ports: [80, 443] }, keys: ['plain', '<secret>'] };

  it('are recorded as printed (a secret inside a list masked) and handed back on stdin to read and update', async () => {
    const structured = script('structured.mjs', STRUCTURED);
    const state = join(dir, 'structured.json');
    const cmd = (op: string): string[] => [node, structured, state, op];
    const n = genericNode('lists', { commands: { read: cmd('read'), create: cmd('create'), update: cmd('update') }, input: { size: 1 } });
    const b = backend({ env: ['DS_TEST_TOKEN'] }, { ...process.env, DS_TEST_TOKEN: TOKEN });
    const recorded = new Map<string, Outputs>();

    const created = await b.create(n, opContext(recorded));
    expect(created).toEqual({ status: 'done', outputs: expected });
    if (created.status === 'done') recorded.set(n.id, created.outputs);
    expect(await observeOne(b, n, recorded)).toEqual({ status: 'upToDate', outputs: expected });

    writeFileSync(state, JSON.stringify({ size: 2 }));
    const drifted = await observeOne(b, n, recorded);
    expect(drifted).toEqual({ status: 'drifted', diffs: [{ path: 'input.size', desired: 1, actual: 2 }], outputs: expected });
    expect(await b.update(n, drifted.status === 'drifted' ? drifted.diffs : [], opContext(recorded))).toEqual({ status: 'done', outputs: expected });

    const requests = readFileSync(`${state}.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { op: string; req: { outputs: unknown } });
    expect(requests.map((r) => r.op)).toEqual(['create', 'read', 'read', 'update']);
    for (const r of requests.slice(1)) expect(r.req.outputs).toEqual(expected);
    expect(JSON.stringify(requests)).not.toContain(TOKEN);
  });
});

// GOAL-FORMAT.md: a secret field takes { fromEnv } or { fromFile }. In an exec input the reference was
// handed to the command as it is written ({"fromEnv": "DB_PASSWORD"} on stdin), as if a password.
describe('exec backend: secret references in the input', () => {
  it('are read at run time and handed on stdin; their drift and what the command says back are masked', async () => {
    const state = join(dir, 'secret.json');
    writeFileSync(join(dir, 'key.txt'), 'file-secret-1\n');
    const cmd = (op: string): string[] => [node, './resource.mjs', state, op];
    const n = genericNode('db-user', {
      commands: { read: cmd('read'), create: cmd('create'), update: cmd('update') },
      input: { user: 'app', password: { fromEnv: 'DS_EXEC_PW' }, keys: [{ fromFile: 'key.txt' }] },
    });
    const recorded = new Map<string, Outputs>();
    const b = backend({}, { ...process.env, DS_EXEC_PW: 'env-secret-1' });
    expect(await b.create(n, opContext(recorded))).toMatchObject({ status: 'done' });
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual({ user: 'app', password: 'env-secret-1', keys: ['file-secret-1'] });
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });

    // Changed out of band: the drift says the key differs, never either value.
    writeFileSync(state, JSON.stringify({ user: 'app', password: 'changed-by-hand', keys: ['file-secret-1'] }));
    const drifted = await observeOne(b, n, recorded);
    expect(drifted).toMatchObject({ status: 'drifted', diffs: [{ path: 'input.password', desired: '<secret>', actual: '<secret>', masked: true }] });
    expect(await b.update(n, drifted.status === 'drifted' ? drifted.diffs : [], opContext(recorded))).toMatchObject({ status: 'done' });
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });

    // Rotated, with no digest of the value applied recorded (no memo handed back here, as for an adopted
    // resource): drift, masked, and the new value on the next update.
    const rotated = backend({}, { ...process.env, DS_EXEC_PW: 'env-secret-2' });
    const after = await observeOne(rotated, n, recorded);
    expect(after).toMatchObject({ status: 'drifted', diffs: [{ path: 'input.password', masked: true }] });
    expect(JSON.stringify(after)).not.toContain('env-secret');
    await rotated.update(n, after.status === 'drifted' ? after.diffs : [], opContext(recorded));
    expect(JSON.parse(readFileSync(state, 'utf8'))).toMatchObject({ password: 'env-secret-2' });

    // A command that quotes its input back on stderr: masked in the fault.
    const tattle = genericNode('tattle', { commands: { read: ['sh', '-c', 'cat >&2; exit 3'], create: ['true'] }, input: { password: { fromEnv: 'DS_EXEC_PW' } } });
    const f = faultOf(await observeOne(rotated, tattle));
    expect(f.message).toContain('<secret>');
    expect(f.message).not.toContain('env-secret-2');

    // Not set: the node's permanent fault, naming the variable; the command is not run.
    const before = readFileSync(`${state}.log`, 'utf8');
    const unset = { ...process.env };
    delete unset.DS_EXEC_PW;
    expect(faultOf(await observeOne(backend({}, unset), n, recorded))).toMatchObject({ class: 'permanent', message: 'secret environment variable DS_EXEC_PW is not set' });
    expect(readFileSync(`${state}.log`, 'utf8')).toBe(before);
  });
});

// A rotated secret is a change of the desired input, not drift: the backend keeps in the node's memo
// a salted digest of each secret key's value as last applied, and tells the two apart by it.
describe('exec backend: a rotated secret in the input', () => {
  it('is marked as a rotation, where a value changed by hand with the secret unchanged stays drift', async () => {
    const state = join(dir, 'rotation.json');
    writeFileSync(join(dir, 'rot-key.txt'), 'file-key-1\n');
    const cmd = (op: string): string[] => [node, './resource.mjs', state, op];
    const n = genericNode('rot', {
      commands: { read: cmd('read'), create: cmd('create'), update: cmd('update') },
      input: { user: 'app', password: { fromEnv: 'DS_EXEC_ROT_PW' }, keys: [{ fromFile: 'rot-key.txt' }] },
    });
    // What the runtime does with memos: the last one an observation, create or update returned, handed back.
    const recorded = new Map<string, Outputs>();
    const memos = new Map<string, ObservationMemo | undefined>();
    const ctx = (): OperationContext => ({ ...opContext(recorded), memoOf: (id) => memos.get(id) });
    const observe = async (b: InfraBackend): Promise<Observation> => {
      const obs = (await b.observe([n], ctx())).get(n.id)!;
      if (obs.status === 'upToDate' || obs.status === 'drifted') memos.set(n.id, obs.memo);
      return obs;
    };
    const update = async (b: InfraBackend, obs: Observation): Promise<void> => {
      const r = await b.update(n, obs.status === 'drifted' ? obs.diffs : [], ctx());
      expect(r.status).toBe('done');
      if (r.status === 'done') memos.set(n.id, r.memo);
    };
    const withSecret = (pw: string): InfraBackend => backend({}, { ...process.env, DS_EXEC_ROT_PW: pw });

    const created = await withSecret('env-rot-1').create(n, ctx());
    expect(created).toMatchObject({ status: 'done', memo: { 'secretDigest.password': expect.any(String), 'secretDigest.keys': expect.any(String) } });
    expect(JSON.stringify(created)).not.toMatch(/env-rot-1|file-key-1/);
    memos.set(n.id, created.status === 'done' ? created.memo : undefined);
    expect(await observe(withSecret('env-rot-1'))).toMatchObject({ status: 'upToDate', memo: memos.get(n.id) });

    // Changed by hand, the secret as it was: drift.
    writeFileSync(state, JSON.stringify({ user: 'app', password: 'changed-by-hand', keys: ['file-key-1'] }));
    const drift = await observe(withSecret('env-rot-1'));
    expect(drift).toEqual(expect.objectContaining({ status: 'drifted', diffs: [{ path: 'input.password', desired: '<secret>', actual: '<secret>', masked: true }] }));
    await update(withSecret('env-rot-1'), drift);

    // The secret rotated: a rotation, masked, for each key whose secret changed.
    const rotated = await observe(withSecret('env-rot-2'));
    expect(rotated).toMatchObject({ status: 'drifted', diffs: [{ path: 'input.password', desired: '<secret>', actual: '<secret>', masked: true, cause: 'secret-rotated' }] });
    expect(JSON.stringify(rotated)).not.toMatch(/env-rot/);
    // Still one after an observation that only reported it (the digest of what was applied is kept).
    expect(await observe(withSecret('env-rot-2'))).toMatchObject({ diffs: [{ path: 'input.password', cause: 'secret-rotated' }] });
    writeFileSync(join(dir, 'rot-key.txt'), 'file-key-2\n');
    expect(await observe(withSecret('env-rot-2'))).toMatchObject({ diffs: [{ path: 'input.password', cause: 'secret-rotated' }, { path: 'input.keys', cause: 'secret-rotated' }] });
    await update(withSecret('env-rot-2'), rotated);
    expect(JSON.parse(readFileSync(state, 'utf8'))).toEqual({ user: 'app', password: 'env-rot-2', keys: ['file-key-2'] });
    expect(await observe(withSecret('env-rot-2'))).toMatchObject({ status: 'upToDate' });

    // A key without a secret is never a rotation.
    writeFileSync(state, JSON.stringify({ user: 'other', password: 'env-rot-2', keys: ['file-key-2'] }));
    expect(await observe(withSecret('env-rot-2'))).toEqual(expect.objectContaining({ status: 'drifted', diffs: [{ path: 'input.user', desired: 'app', actual: 'other' }] }));
  });
});

// A key holding a secret is masked whole in its drift, so the runtime cannot look into it: an ignored
// path inside it is left out by the backend, before the values are masked.
describe('exec backend: ignoreFields inside an input key that holds a secret', () => {
  it('leaves the ignored key out before masking; the rest of the key is still compared', async () => {
    const state = join(dir, 'ignored.json');
    const cmd = (op: string): string[] => [node, './resource.mjs', state, op];
    const written = genericNode('ign', {
      commands: { read: cmd('read'), create: cmd('create'), update: cmd('update') },
      input: { db: { host: 'db-1', password: { fromEnv: 'DS_EXEC_IGN_PW' } } },
    });
    const n = { ...written, settings: { ...written.settings, ignoreFields: ['input.db.host'] } };
    const recorded = new Map<string, Outputs>();
    const b = backend({}, { ...process.env, DS_EXEC_IGN_PW: 'env-ign-1' });
    expect(await b.create(n, opContext(recorded))).toMatchObject({ status: 'done' });

    writeFileSync(state, JSON.stringify({ db: { host: 'moved-by-hand', password: 'env-ign-1' } }));
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'upToDate' });
    writeFileSync(state, JSON.stringify({ db: { host: 'moved-by-hand', password: 'changed-by-hand' } }));
    expect(await observeOne(b, n, recorded)).toMatchObject({ status: 'drifted', diffs: [{ path: 'input.db', desired: '<secret>', actual: '<secret>', masked: true }] });
  });
});

describe('exec backend: exit status classification', () => {
  it.each([
    { name: 'exit 75 (EX_TEMPFAIL) is transient', exit: 75, cls: 'transient' },
    { name: 'exit 77 (EX_NOPERM) is an auth failure', exit: 77, cls: 'auth' },
    { name: 'exit 1 is permanent', exit: 1, cls: 'permanent' },
    { name: 'exit 2 is permanent too', exit: 2, cls: 'permanent' },
  ])('$name', async ({ exit, cls }) => {
    const path = script(`exit-${exit}.sh`, `#!/bin/sh\ncat >/dev/null\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "noise $i" >&2; done\necho "the reason: quota" >&2\nexit ${exit}\n`);
    const n = genericNode('x', { commands: { read: [path], create: [path] } });
    const f = faultOf(await backend().create(n, opContext()));
    expect(f).toMatchObject({ class: cls, code: `exit-${exit}` });
    // The message is the last lines of stderr, bounded.
    expect(f.message.split('\n').at(-1)).toBe('the reason: quota');
    expect(f.message).not.toContain('noise 1\n');
    expect(f.message.split('\n').length).toBeLessThanOrEqual(10);
  });

  it('names the exit status when stderr is empty', async () => {
    const n = genericNode('x', { commands: { read: ['/bin/sh', '-c', 'exit 3'], create: ['true'] } });
    expect(faultOf(await observeOne(backend(), n))).toEqual({ class: 'permanent', code: 'exit-3', message: 'read command exited with status 3' });
  });

  it('a missing program is a permanent spawn failure, not a crash', async () => {
    const n = genericNode('x', { commands: { read: ['./no-such-script'], create: ['./no-such-script'] } });
    expect(faultOf(await observeOne(backend(), n))).toMatchObject({ class: 'permanent', code: 'spawn-failed' });
  });

  it.each([
    { name: 'garbage', out: 'created it!' },
    { name: 'nothing', out: '' },
    { name: 'outputs that are not a map', out: '{"outputs": [1]}' },
    { name: 'its id under a misspelt key', out: '{"output": {"id": "i-1"}}' },
  ])('a create that exits 0 printing $name is cut short: it may have made its resource', async ({ out }) => {
    const n = genericNode('x', { commands: { read: ['/bin/echo', '{"exists": false}'], create: ['/bin/echo', out] } });
    const created = await backend().create(n, opContext());
    expect(created.status === 'failed' ? created.fault : undefined).toMatchObject({ class: 'permanent', code: 'bad-output', cutShort: true });
    // A read is no create: its bad output says nothing about what exists.
    const read = await observeOne(backend(), genericNode('y', { commands: { read: ['/bin/echo', out], create: ['/bin/true'] } }));
    expect(read.status === 'failed' ? read.fault.cutShort : 'not failed').toBeUndefined();
  });

  it('a command that exits 0 without its JSON has what it wrote on stderr in the fault', async () => {
    const n = genericNode('x', { commands: { read: ['/bin/sh', '-c', 'cat > /dev/null; echo "jq: error: Cannot index string with \\"name\\"" >&2'], create: ['/bin/true'] } });
    expect(faultOf(await observeOne(backend(), n))).toMatchObject({
      code: 'bad-output',
      message: 'read command printed output that is not JSON: (empty); its stderr: jq: error: Cannot index string with "name"',
    });
  });

  it('a missing working directory is named as such, not as a missing program', async () => {
    // Node reports both as "spawn PROGRAM ENOENT": here the program exists, the backend cwd does not.
    const n = genericNode('x', { commands: { read: [node, '--version'], create: [node, '--version'] } });
    const obs = await observeOne(backend({ cwd: 'no-such-dir' }), n);
    expect(faultOf(obs)).toMatchObject({ class: 'permanent', code: 'spawn-failed', message: `read command could not be started: the working directory ${join(dir, 'no-such-dir')} does not exist (or is not a directory)` });
    expect(obs.status === 'failed' ? obs.fault.hint : undefined).toContain('backend config cwd');
  });

  it('a program that is not executable, or is a directory, says so with a hint, not a bare EACCES', async () => {
    mkdirSync(join(dir, 'bin', 'tool'), { recursive: true });
    writeFileSync(join(dir, 'bin', 'plain'), '#!/bin/sh\necho \'{"exists":false}\'\n', { mode: 0o644 });
    const plain = await observeOne(backend(), genericNode('x', { commands: { read: ['./bin/plain', 'read'], create: ['./bin/plain', 'create'] } }));
    expect(faultOf(plain)).toMatchObject({ class: 'permanent', code: 'spawn-failed', message: expect.stringContaining('spawn ./bin/plain EACCES') });
    expect(plain.status === 'failed' ? plain.fault.hint : undefined).toContain('chmod +x');
    const directory = await observeOne(backend(), genericNode('y', { commands: { read: ['./bin/tool', 'read'], create: ['./bin/tool', 'create'] } }));
    expect(faultOf(directory)).toMatchObject({ class: 'permanent', code: 'spawn-failed', message: 'read command could not be started: ./bin/tool is a directory, not a program' });
    expect(directory.status === 'failed' ? directory.fault.hint : undefined).toBe('name the program inside that directory');
  });

  it('a script whose #! interpreter is missing is named as such, not as a missing program', async () => {
    // Node reports it as "spawn ./bin/res ENOENT", with the hint to check a program path that is right.
    mkdirSync(join(dir, 'bin'), { recursive: true });
    writeFileSync(join(dir, 'bin', 'res'), '#!/nonexistent/python9 -u\nprint("never")\n', { mode: 0o755 });
    const obs = await observeOne(backend(), genericNode('x', { commands: { read: ['./bin/res', 'read'], create: ['./bin/res', 'create'] } }));
    expect(faultOf(obs)).toMatchObject({ class: 'permanent', code: 'spawn-failed', message: 'read command could not be started: ./bin/res is there, but the interpreter its #! line names is not: /nonexistent/python9' });
    expect(obs.status === 'failed' ? obs.fault.hint : undefined).toContain('install that interpreter');
    // Saved with Windows line endings, the interpreter named is there: the carriage return is not.
    writeFileSync(join(dir, 'bin', 'crlf'), '#!/bin/sh\r\necho never\r\n', { mode: 0o755 });
    const crlf = await observeOne(backend(), genericNode('z', { commands: { read: ['./bin/crlf', 'read'], create: ['./bin/crlf', 'create'] } }));
    expect(faultOf(crlf)).toMatchObject({ code: 'spawn-failed', message: 'read command could not be started: ./bin/crlf is there, but its #! line ends in a carriage return (Windows line endings): the interpreter looked for is "/bin/sh\\r"' });
    // A program that is not there keeps its own message and hint.
    const missing = await observeOne(backend(), genericNode('y', { commands: { read: ['./bin/none', 'read'], create: ['./bin/none', 'create'] } }));
    expect(faultOf(missing)).toMatchObject({ message: expect.stringContaining('spawn ./bin/none ENOENT') });
    expect(missing.status === 'failed' ? missing.fault.hint : undefined).toContain('check the program path');
  });

  // `desiredstate backends` (and /readyz) said healthy while no command of the backend could start.
  it('is unhealthy while its working directory is missing or not a directory, healthy once it is one', async () => {
    const ctx = { signal: new AbortController().signal, log: opContext().log };
    expect(await backend({ cwd: 'no-such-dir' }).health?.(ctx)).toEqual({ status: 'unhealthy', message: `the backend cwd ${join(dir, 'no-such-dir')} cannot be used (ENOENT)` });
    expect(await backend({ cwd: 'resource.mjs' }).health?.(ctx)).toEqual({ status: 'unhealthy', message: `the backend cwd ${join(dir, 'resource.mjs')} is not a directory` });
    expect(await backend().health?.(ctx)).toEqual({ status: 'healthy' });
  });
});

describe('exec backend: output that is not the protocol JSON is a bad-output fault', () => {
  const printing = (text: string): string[] => [node, '-e', `process.stdout.write(${JSON.stringify(text)})`];
  it.each([
    { name: 'read: garbage text', op: 'read', out: 'hello world' },
    { name: 'read: nothing at all', op: 'read', out: '' },
    { name: 'read: a JSON array', op: 'read', out: '[1,2]' },
    { name: 'read: exists is not a boolean', op: 'read', out: '{"exists":"yes"}' },
    { name: 'read: state is not an object', op: 'read', out: '{"exists":true,"state":5}' },
    { name: 'read: outputs that are a list, not an object', op: 'read', out: '{"exists":true,"state":{},"outputs":[{"a":1}]}' },
    { name: 'create: nothing at all', op: 'create', out: '' },
    { name: 'create: outputs is a string', op: 'create', out: '{"outputs":"x"}' },
    { name: 'create: truncated JSON', op: 'create', out: '{"outputs":{"a":' },
    // GOAL-FORMAT.md: create and update print {"outputs": {…}}; an object without it would lose a misspelt id.
    { name: 'create: an object without "outputs"', op: 'create', out: '{}' },
    { name: 'create: "output" misspelt', op: 'create', out: '{"output":{"id":"i-1"}}' },
    { name: 'update: garbage', op: 'update', out: 'OK' },
    { name: 'update: an object without "outputs"', op: 'update', out: '{"id":"i-1"}' },
    { name: 'delete: garbage (empty or {} is fine)', op: 'delete', out: 'deleted!' },
    { name: 'delete: an object with keys (delete prints nothing)', op: 'delete', out: '{"deleted":true}' },
    // Nesting that deep overflows the stack of whatever walks it next (drift comparison, plan output).
    { name: 'read: a state nested 50,000 levels deep', op: 'read', out: `{"exists":true,"state":{"a":${'['.repeat(50_000)}${']'.repeat(50_000)}}}` },
    { name: 'read: JSON nested deeper than 64 levels (the goal files\' limit)', op: 'read', out: `{"exists":true,"state":${'{"a":'.repeat(64)}1${'}'.repeat(64)}}` },
    // Outputs may be lists and maps, within the same bounds: maxOutputBytes (below) and this depth.
    { name: 'create: outputs nested deeper than 64 levels', op: 'create', out: `{"outputs":{"a":${'['.repeat(64)}1${']'.repeat(64)}}}` },
  ])('$name', async ({ op, out }) => {
    const commands = { read: printing(out), create: printing(out), update: printing(out), delete: printing(out) };
    const n = genericNode('x', { commands });
    const b = backend();
    const ctx = opContext();
    const result = op === 'read' ? await observeOne(b, n) : op === 'create' ? await b.create(n, ctx) : op === 'update' ? await b.update(n, [], ctx) : await b.delete(n, ctx);
    expect(faultOf(result)).toMatchObject({ class: 'permanent', code: 'bad-output' });
  });

  it.each([
    { name: 'delete printing nothing', out: '' },
    { name: 'delete printing {}', out: '{}\n' },
  ])('accepts $name', async ({ out }) => {
    const n = genericNode('x', { commands: { read: ['true'], create: ['true'], delete: printing(out) } });
    expect(await backend().delete(n, opContext())).toEqual({ status: 'done', outputs: {} });
  });

  it.each([
    { name: 'read: a state value in invalid UTF-8', op: 'read', hex: Buffer.from('{"exists":true,"state":{"a":"\xff\xfe"}}', 'latin1').toString('hex') },
    { name: 'create: an output value in invalid UTF-8', op: 'create', hex: Buffer.from('{"outputs":{"o":"\xff"}}', 'latin1').toString('hex') },
  ])('output that is not UTF-8 is bad output, never silently replaced: $name', async ({ op, hex }) => {
    const bytes = [node, '-e', `process.stdout.write(Buffer.from('${hex}', 'hex'))`];
    const n = genericNode('x', { commands: { read: bytes, create: bytes }, input: { a: 'x' } });
    const result = op === 'read' ? await observeOne(backend(), n) : await backend().create(n, opContext());
    expect(faultOf(result)).toMatchObject({ class: 'permanent', code: 'bad-output' });
    expect(faultOf(result).message).toContain('UTF-8');
  });

  it('oversized output is cut off at maxOutputBytes and classified', async () => {
    const n = genericNode('x', { commands: { read: [node, '-e', "process.stdout.write('x'.repeat(5_000_000))"], create: ['true'] } });
    const started = Date.now();
    expect(faultOf(await observeOne(backend({ maxOutputBytes: 4096 }), n))).toMatchObject({ class: 'permanent', code: 'bad-output' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});

describe('exec backend: missing commands', () => {
  it.each([
    { name: 'update without an update command reports, never re-runs create', op: 'update', code: 'no-update-command' },
    { name: 'delete without a delete command fails', op: 'delete', code: 'no-delete-command' },
  ])('$name', async ({ op, code }) => {
    const marker = join(dir, `never-${code}`);
    const n = genericNode('x', { commands: { read: ['true'], create: ['/bin/sh', '-c', `touch ${marker}`] } });
    const b = backend();
    const r = op === 'update' ? await b.update(n, [], opContext()) : await b.delete(n, opContext());
    expect(faultOf(r)).toMatchObject({ class: 'permanent', code });
    expect(() => readFileSync(marker)).toThrow();
  });
});

describe('exec backend: process control', () => {
  it('a timeout returns quickly as a transient fault and kills the whole process group', async () => {
    const pids = join(dir, 'sleep.pids');
    const path = script('sleep.sh', `#!/bin/sh\nsleep 30 &\necho $! > ${pids}\necho $$ >> ${pids}\nsleep 30\n`);
    const n = genericNode('slow', { commands: { read: [path], create: [path] } });
    const started = Date.now();
    const f = faultOf(await observeOne(backend({ timeout: 300 }), n));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(f).toMatchObject({ class: 'transient', code: 'timeout' });
    const started_pids = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(started_pids).toHaveLength(2);
    expect(await eventually(() => started_pids.every((p) => !isAlive(p)))).toBe(true);
  });

  it('a command and a grandchild that both ignore SIGTERM are still killed at the timeout', async () => {
    const pids = join(dir, 'stubborn.pids');
    const path = script('stubborn.sh', `#!/bin/sh\ntrap '' TERM\n(trap '' TERM; sleep 30) &\necho $! > ${pids}\necho $$ >> ${pids}\nwhile :; do sleep 1; done\n`);
    const n = genericNode('stubborn', { commands: { read: [path], create: [path] } });
    const started = Date.now();
    expect(faultOf(await observeOne(backend({ timeout: 300 }), n))).toMatchObject({ class: 'transient', code: 'timeout' });
    expect(Date.now() - started).toBeLessThan(3000);
    const started_pids = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(await eventually(() => started_pids.every((p) => !isAlive(p)))).toBe(true);
  });

  it('a command that exits leaving a grandchild on its stdout returns, and the grandchild is killed, not leaked', async () => {
    const pids = join(dir, 'linger.pids');
    // The background sleep inherits stdout: the pipe stays open after the command itself exits 0.
    const path = script('linger.sh', `#!/bin/sh\nsleep 30 &\necho $! > ${pids}\necho '{"exists":false}'\n`);
    const n = genericNode('linger', { commands: { read: [path], create: [path] } });
    const started = Date.now();
    expect(await observeOne(backend({ timeout: 20_000 }), n)).toEqual({ status: 'absent' });
    expect(Date.now() - started).toBeLessThan(5000);
    const grandchild = Number(readFileSync(pids, 'utf8').trim());
    expect(await eventually(() => !isAlive(grandchild))).toBe(true);
  });

  it('accepts the timeout as a duration string', () => {
    expect(execConfigSchema().parse({ timeout: '1m30s' }).timeout).toBe(90_000);
    expect(execConfigSchema().safeParse({ timeout: 'soon' }).success).toBe(false);
    expect(execConfigSchema().safeParse({ timeoutMs: 5 }).success).toBe(false);
  });

  it('an abort stops the command as a transient fault', async () => {
    const n = genericNode('x', { commands: { read: ['/bin/sh', '-c', 'sleep 30'], create: ['true'] } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const obs = (await backend().observe([n], opContext(new Map(), ac.signal))).get('x')!;
    expect(faultOf(obs)).toMatchObject({ class: 'transient', code: 'aborted' });
  });

  it('passes only allowlisted environment variables', async () => {
    const env = { ...process.env, DS_TEST_KEEP: 'kept', DS_TEST_HIDDEN: 'secret' };
    const n = genericNode('x', { commands: { read: ['true'], create: [node, './echo.mjs'] } });
    const r = await backend({ env: ['DS_TEST_KEEP'] }, env).create(n, opContext());
    expect(r).toMatchObject({ status: 'done', outputs: { keep: 'kept', hidden: null } });
    const defaults = await backend({}, env).create(n, opContext());
    expect(defaults).toMatchObject({ status: 'done', outputs: { keep: null, hidden: null } });
  });

  // process.env inherits these: an allowlisted name not set was passed as `toString=function toString() { [native code] }`.
  it('passes an allowlisted name that is not set as nothing, not as what the environment object inherits', async () => {
    const env = { ...process.env, DS_TEST_KEEP: 'kept' };
    const names = "console.log(JSON.stringify({ outputs: { names: Object.keys(process.env).filter((k) => ['constructor', 'toString', 'valueOf', 'DS_TEST_KEEP'].includes(k)).join(',') } }))";
    const n = genericNode('x', { commands: { read: ['true'], create: [node, '-e', names] } });
    const r = await backend({ env: ['constructor', 'toString', 'valueOf', 'DS_TEST_KEEP'] }, env).create(n, opContext());
    expect(r).toMatchObject({ status: 'done', outputs: { names: 'DS_TEST_KEEP' } });
    const set = await backend({ env: ['toString'] }, { ...env, toString: 'a value' }).create(n, opContext());
    expect(set).toMatchObject({ status: 'done', outputs: { names: 'toString' } });
  });

  it.each([
    { name: 'quoted on stderr by a failing command', read: ['/bin/sh', '-c', 'echo "auth failed with token $DS_TEST_TOKEN" >&2; exit 77'], cls: 'auth' },
    { name: 'printed on stdout as bad output', read: ['/bin/sh', '-c', 'echo "token=$DS_TEST_TOKEN"'], cls: 'permanent' },
    { name: 'given as the reason a read cannot tell', read: ['/bin/sh', '-c', 'echo "{\\"exists\\":\\"unknown\\",\\"reason\\":\\"$DS_TEST_TOKEN\\"}"'], cls: undefined },
    // The excerpt of bad output is quoted as a JSON string: a quote or a backslash in the secret is escaped there.
    { name: 'with a quote and a backslash, printed on stdout as bad output', read: ['/bin/sh', '-c', 'printf "token=%s\\n" "$DS_TEST_TOKEN"'], cls: 'permanent', token: 'tok"S3CRET\\4711' },
    // Messages keep 200 characters of bad output and 2000 of stderr: what is left of a secret cut there shows.
    { name: 'cut short at the end of a long bad output', read: ['/bin/sh', '-c', 'printf "%0183d token=%s\\n" 0 "$DS_TEST_TOKEN"'], cls: 'permanent' },
    { name: 'cut short at the start of a long stderr', read: ['/bin/sh', '-c', 'printf "%s%01988d\\n" "$DS_TEST_TOKEN" 0 >&2; exit 1'], cls: 'permanent' },
    // A fault keeps the last 10 non-empty lines of stderr, each without trailing blanks: a key of more lines is not there whole.
    {
      name: 'of many lines (a private key), quoted on stderr',
      read: ['/bin/sh', '-c', 'printf "%s\\n" "$DS_TEST_TOKEN" >&2; exit 1'],
      cls: 'permanent',
      token: Array.from({ length: 12 }, (_, i) => `key-line-${i}-S3CRET `).join('\n'),
    },
  ])('a secret from an allowlisted variable never reaches a fault or a reason: $name', async ({ read, cls, token }) => {
    const env = { ...process.env, DS_TEST_TOKEN: token ?? 'tok-S3CRET-4711' };
    const n = genericNode('x', { commands: { read, create: ['true'] } });
    const obs = await observeOne(backend({ env: ['PATH', 'DS_TEST_TOKEN'] }, env), n);
    const said = obs.status === 'failed' ? obs.fault.message : obs.status === 'indeterminate' ? obs.reason : JSON.stringify(obs);
    if (cls !== undefined) expect(faultOf(obs).class).toBe(cls);
    expect(said).toContain('<secret>');
    expect(said).not.toContain('S3CRET');
  });

  it.each([
    { name: 'shell metacharacters', arg: 'x; rm -rf /' },
    { name: 'command substitution', arg: '$(id)' },
    { name: 'backticks and globs', arg: '`id` * ~' },
    { name: 'quotes and newlines', arg: `it's "quoted"\nnext` },
  ])('arguments arrive literally: $name', async ({ arg }) => {
    const n = genericNode('x', { commands: { read: ['true'], create: [node, './echo.mjs', arg, 'second'] } });
    const r = await backend().create(n, opContext());
    expect(r.status === 'done' ? JSON.parse(String(r.outputs.argv)) : r).toEqual([arg, 'second']);
  });
});
