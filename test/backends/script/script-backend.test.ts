import { spawnSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CircuitBreaker, decide } from '../../../src/runtime/index.ts';
import type { BackendNode, InfraBackend } from '../../../src/infra/index.ts';
import type { Fault, FieldDiff, NodeSpec } from '../../../src/runtime/index.ts';
import { faultOf, heldReason, node, observe, opContext, printing, project } from './harness.ts';
import { warnSkipped } from '../../support/skip.ts';

// Real processes (sh, jq), a real SQLite state file shared by the backend and the test.
const hasJq = spawnSync('jq', ['--version']).status === 0;
if (!hasJq) warnSkipped(['SKIPPING the built-in template tests: jq is not on PATH (install jq to run them).']);

const FILE_INPUT = { path: 'etc/motd', content: 'hello\n' };

function onlyScript(p: ReturnType<typeof project>): string {
  const all = p.store.artifacts.list();
  expect(all).toHaveLength(1);
  return all[0]!.hash;
}

/** The script `b` generates for `n` (asked by observing it), approved by a reviewer: its hash. */
async function approvedScript(p: ReturnType<typeof project>, b: InfraBackend, n: BackendNode): Promise<string> {
  await observe(b, n);
  const hash = onlyScript(p);
  p.store.artifacts.review(hash, 'approved', 'ana', null);
  return hash;
}

/** Seeds counted successes, as if the script had run that often. */
function seedSuccesses(p: ReturnType<typeof project>, hash: string, n: number): void {
  for (let i = 0; i < n; i++) p.store.artifacts.recordRun({ hash, subject: 'seed', action: 'create', outcome: 'success', counted: true, exitCode: 0, detail: null, durationMs: 1, grantId: null });
}

describe.skipIf(!hasJq)('gating', () => {
  it('an unreviewed script never runs: held on observe, refused on create, nothing in the ledger', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT);
    expect(heldReason(await observe(b, n))).toMatch(/^script [0-9a-f]{12} awaits review: desiredstate scripts show [0-9a-f]{12}$/);
    const f = faultOf(await b.create(n, opContext()));
    expect(f).toMatchObject({ class: 'permanent', code: 'script-unreviewed' });
    const hash = onlyScript(p);
    expect(p.store.artifacts.runs(hash)).toEqual([]);
    expect(existsSync(join(p.dir, 'root/etc/motd'))).toBe(false);
  });

  it('reviewed, in an environment that does not require approval: runs and earns trust', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT, 'dev');
    const hash = await approvedScript(p, b, n);
    expect(await observe(b, n)).toEqual({ status: 'absent' });
    expect(await b.create(n, opContext())).toEqual({ status: 'done', outputs: { path: 'etc/motd' } });
    expect(readFileSync(join(p.dir, 'root/etc/motd'), 'utf8')).toBe('hello\n');
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 1, failures: 0 });
    // The create is a success once its own read, right after it, finds the file as asked.
    expect(p.store.artifacts.runs(hash).map((r) => [r.action, r.outcome, r.counted])).toEqual([
      ['read', 'success', false],
      ['create', 'success', true],
      ['read', 'success', false],
    ]);
  });

  it('reviewed, below the bar, in prod: held until a per-run approval, which one create consumes', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT, 'prod');
    const hash = await approvedScript(p, b, n);
    expect(heldReason(await observe(b, n))).toContain(`needs a per-run approval to create motd in prod (trust 0.0500 < 0.94): desiredstate scripts approve-run ${hash.slice(0, 12)} --node motd`);
    // What approve-run answers: the create the pass held.
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'create' });
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'script-needs-approval' });

    const grant = p.store.artifacts.grant(hash, 'motd', 'ana', 'change 42')!;
    expect(p.store.artifacts.openRequest(hash, 'motd')).toBeUndefined();
    expect(await observe(b, n)).toEqual({ status: 'absent' });
    expect((await b.create(n, opContext())).status).toBe('done');
    expect(p.store.artifacts.runs(hash).findLast((r) => r.action === 'create')).toMatchObject({ outcome: 'success', grantId: grant.id });
    // One-shot: the next change needs another approval; an up-to-date node needs none.
    expect(await observe(b, n)).toMatchObject({ status: 'upToDate' });
    expect(faultOf(await b.delete(n, opContext()))).toMatchObject({ code: 'script-needs-approval' });
    // A grant is for one node: another node of the same shape is still held.
    expect(heldReason(await observe(b, node('other', { path: 'x', content: '' }, 'prod')))).toContain('--node other');
  });

  // A grant given for a node that waited for nothing stayed open, and the next change of any kind took it, unasked.
  it('a grant permits the verb it was given for only, and is voided once the node needs nothing', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT, 'prod');
    const hash = await approvedScript(p, b, n);
    // Granted for a create the node does not need (made meanwhile by hand): neither an update nor a delete takes it.
    await observe(b, n);
    const unused = p.store.artifacts.grant(hash, 'motd', 'ana', null)!;
    mkdirSync(join(p.dir, 'root/etc'), { recursive: true });
    writeFileSync(join(p.dir, 'root/etc/motd'), 'edited');
    expect(heldReason(await observe(b, n))).toContain('needs a per-run approval to update motd');
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'update' });
    expect(faultOf(await b.update(n, [], opContext()))).toMatchObject({ code: 'script-needs-approval' });
    expect(faultOf(await b.delete(n, opContext()))).toMatchObject({ code: 'script-needs-approval' });
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'delete' });
    // Put right by hand: nothing waits, and the create grant is void: a later delete of the file does not take it.
    writeFileSync(join(p.dir, 'root/etc/motd'), 'hello\n');
    expect(await observe(b, n)).toMatchObject({ status: 'upToDate' });
    expect(p.store.artifacts.openRequest(hash, 'motd')).toBeUndefined();
    expect(p.store.artifacts.grants(hash)).toEqual([expect.objectContaining({ id: unused.id, action: 'create', usedAt: null, voidedAt: expect.any(Number) })]);
    rmSync(join(p.dir, 'root/etc/motd'));
    expect(heldReason(await observe(b, n))).toContain('needs a per-run approval to create motd');
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ code: 'script-needs-approval' });
    expect(existsSync(join(p.dir, 'root/etc/motd'))).toBe(false);
  });

  // A grant permitted its verb with whatever input the node had when it ran: a goal changed after the approval ran content nobody approved.
  it('a grant permits the run with the input it was given for: once the input changes it is void, and the node is held again saying so', async () => {
    const p = project();
    const b = p.backend();
    const one = node('motd', { path: 'etc/motd', content: 'version one\n' }, 'prod');
    const hash = await approvedScript(p, b, one);
    await observe(b, one);
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'create', input: '{"path":"etc/motd","content":"version one\\n"}' });
    const grant = p.store.artifacts.grant(hash, 'motd', 'ana', null)!;
    expect(grant).toMatchObject({ action: 'create', input: '{"path":"etc/motd","content":"version one\\n"}' });

    const two = node('motd', { path: 'etc/motd', content: 'version TWO (not what was approved)\n' }, 'prod');
    expect(faultOf(await b.create(two, opContext()))).toMatchObject({ code: 'script-needs-approval', message: expect.stringMatching(/the input changed since ana approved a run at .*: that approval is void/) });
    expect(existsSync(join(p.dir, 'root/etc/motd'))).toBe(false);
    expect(p.store.artifacts.grants(hash)).toEqual([expect.objectContaining({ id: grant.id, usedAt: null, voidedAt: expect.any(Number) })]);
    // Held again, for a run with the input it has now; the void grant is not taken back by the old input either.
    expect(heldReason(await observe(b, two))).toContain('the input changed since ana approved a run');
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'create', input: expect.stringContaining('version TWO') });
    expect(faultOf(await b.create(one, opContext()))).toMatchObject({ code: 'script-needs-approval' });
    await observe(b, two);
    const again = p.store.artifacts.grant(hash, 'motd', 'ana', null)!;
    expect((await b.create(two, opContext())).status).toBe('done');
    expect(readFileSync(join(p.dir, 'root/etc/motd'), 'utf8')).toBe('version TWO (not what was approved)\n');
    expect(p.store.artifacts.runs(hash).findLast((r) => r.action === 'create')).toMatchObject({ outcome: 'success', grantId: again.id });
  });

  it('a request shows the input it asks to run with, secrets masked', async () => {
    const p = project();
    const b = p.backend();
    const n = node('env', { path: 'app.env', content: 'DB_PASSWORD=hunter2secret\n' }, 'prod');
    const hash = await approvedScript(p, b, n);
    await observe(b, n);
    const request = p.store.artifacts.openRequest(hash, 'env');
    expect(request?.input).toContain('DB_PASSWORD=<secret>');
    expect(request?.input).not.toContain('hunter2secret');
  });

  // The read of a node removed from the goals comes right before its delete: it holds the node for the delete's
  // approval (the delete failed as a permanent fault when sent, and spent the node's retry budget), asks for no
  // create or update, and never voids the approval given for that delete (it voided it, and the delete asked again, for ever).
  it('the read before a delete (a node removed from the goals) holds it for the delete\'s approval, and keeps the grant for it', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT, 'prod');
    const hash = await approvedScript(p, b, n);
    await observe(b, n);
    p.store.artifacts.grant(hash, 'motd', 'ana', null)!;
    expect((await b.create(n, opContext())).status).toBe('done');
    const beforeDelete = { ...opContext(), beforeDelete: true as const };
    expect(heldReason((await b.observe([n], beforeDelete)).get('motd')!)).toMatch(new RegExp(`needs a per-run approval to delete motd in prod \\(trust [0-9.]+ < 0\\.94\\): desiredstate scripts approve-run ${hash.slice(0, 12)} --node motd$`));
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'delete' });
    const grant = p.store.artifacts.grant(hash, 'motd', 'ana', 'decommission')!;
    expect((await b.observe([n], beforeDelete)).get('motd')).toMatchObject({ status: 'upToDate' });
    expect(p.store.artifacts.grants(hash).find((g) => g.id === grant.id)).toMatchObject({ usedAt: null, voidedAt: null });
    expect(await b.delete(n, opContext())).toEqual({ status: 'done', outputs: {} });
    expect(p.store.artifacts.runs(hash).findLast((r) => r.action === 'delete')).toMatchObject({ outcome: 'success', grantId: grant.id });
    // Found gone: absent, no create asked for.
    expect((await b.observe([n], beforeDelete)).get('motd')).toEqual({ status: 'absent' });
    expect(p.store.artifacts.openRequest(hash, 'motd')).toBeUndefined();
  });

  // Under selfHeal: false only a change of the goal is made: its update was never asked for, and failed when sent.
  it('under selfHeal: false, a changed goal (or a goal edit ignoreFields held back) waits for the update\'s approval; drift left as it is asks for none', async () => {
    const p = project();
    const b = p.backend();
    const reportOnly = (input: Record<string, unknown>): BackendNode => ({ ...node('motd', input, 'prod'), settings: { selfHeal: false, prune: false, deletionPolicy: 'Delete', ignoreFields: [] } });
    const applied = reportOnly(FILE_INPUT);
    const hash = await approvedScript(p, b, applied);
    await observe(b, applied);
    p.store.artifacts.grant(hash, 'motd', 'ana', null);
    expect((await b.create(applied, opContext())).status).toBe('done');
    // Edited by hand, the goal as applied: drift, only reported.
    writeFileSync(join(p.dir, 'root/etc/motd'), 'edited');
    const asApplied = { ...opContext(), appliedAt: () => true };
    expect((await b.observe([applied], asApplied)).get('motd')).toMatchObject({ status: 'drifted' });
    expect(p.store.artifacts.openRequest(hash, 'motd')).toBeUndefined();
    // Deleted by hand: reported, not made again, so no create is asked for either.
    rmSync(join(p.dir, 'root/etc/motd'));
    expect((await b.observe([applied], asApplied)).get('motd')).toEqual({ status: 'absent' });
    expect(p.store.artifacts.openRequest(hash, 'motd')).toBeUndefined();
    writeFileSync(join(p.dir, 'root/etc/motd'), 'edited');
    // The goal changed since: the update follows, and waits for its approval.
    const changed = reportOnly({ path: 'etc/motd', content: 'changed\n' });
    const notApplied = { ...opContext(), appliedAt: (id: string, spec: NodeSpec) => id === 'motd' && spec.digest === applied.spec.digest };
    expect(heldReason((await b.observe([changed], notApplied)).get('motd')!)).toContain(`needs a per-run approval to update motd in prod`);
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'update', input: expect.stringContaining('changed') });
    p.store.artifacts.grant(hash, 'motd', 'ana', null);
    expect((await b.observe([changed], notApplied)).get('motd')).toMatchObject({ status: 'drifted' });
    expect((await b.update(changed, [], opContext())).status).toBe('done');
    expect(readFileSync(join(p.dir, 'root/etc/motd'), 'utf8')).toBe('changed\n');
    // Asked with the differences found: one in a field whose goal edit ignoreFields held back, the entry since
    // dropped, is that edit (as the runtime answers), so the update follows and waits for its approval.
    writeFileSync(join(p.dir, 'root/etc/motd'), 'edited');
    const heldBack = { ...opContext(), appliedAt: (_id: string, _spec: NodeSpec, diffs: readonly FieldDiff[] = []) => !diffs.some((d) => d.path === 'input.content') };
    expect(heldReason((await b.observe([changed], heldBack)).get('motd')!)).toContain('needs a per-run approval to update motd in prod');
    expect(p.store.artifacts.openRequest(hash, 'motd')).toMatchObject({ action: 'update' });
  });

  it('deletes awaiting a per-run approval do not open the circuit breaker that every node of the backend goes through', async () => {
    // Five nodes removed from a prod goal under prune: each delete waits for a person, not for the backend.
    const p = project();
    const b = p.backend();
    await observe(b, node('n0', FILE_INPUT, 'prod'));
    p.store.artifacts.review(onlyScript(p), 'approved', 'ana', null);
    const breaker = new CircuitBreaker();
    for (let i = 0; i < 5; i++) {
      const f = faultOf(await b.delete(node(`n${i}`, FILE_INPUT, 'prod'), opContext()));
      expect(f.code).toBe('script-needs-approval');
      breaker.recordFailure(f as Fault);
    }
    expect(breaker.state.state).toBe('closed');
  });

  it('above the bar it runs alone in prod; a failure lowers the posterior and re-gates it', async () => {
    const p = project();
    const script = p.file(
      'flaky.sh',
      '#!/bin/sh\ncat > /dev/null\nif [ -e "$PWD/broken" ]; then echo boom >&2; exit 3; fi\ncase "$1" in read) if [ -e "$PWD/made" ]; then echo \'{"exists": true, "state": {"name": "a"}}\'; else echo \'{"exists": false}\'; fi;; create|update) touch "$PWD/made"; echo \'{"outputs": {}}\';; esac\n',
    );
    const b = p.backend({ generator: printing(script) });
    const n = node('thing', { name: 'a' }, 'prod');
    const hash = await approvedScript(p, b, n);
    seedSuccesses(p, hash, 48);
    expect(await observe(b, n)).toEqual({ status: 'absent' });
    expect((await b.create(n, opContext())).status).toBe('done');

    writeFileSync(join(p.dir, 'root/broken'), '');
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'exit-3', message: 'boom' });
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 49, failures: 1 });
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ code: 'script-needs-approval' });
  });

  it('a rejected script never runs; a deterministic generator that repeats it holds the node', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT);
    await observe(b, n);
    const hash = onlyScript(p);
    p.store.artifacts.review(hash, 'rejected', 'ana', 'writes outside root');
    expect(heldReason(await observe(b, n))).toMatch(/was rejected and generator template\/v1 produced it again/);
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'script-rejected' });
    expect(p.store.artifacts.runs(hash)).toEqual([]);
  });

  it('a rejected script is replaced by a new generation when the generator gives something new', async () => {
    const p = project();
    // Each call prints a script with a different comment: like an LLM, never the same text twice.
    const gen = p.file('gen.sh', '#!/bin/sh\ncat > /dev/null\nn=$(cat "$0.count" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$0.count"\nprintf \'#!/bin/sh\\n# version %s\\necho {\\"exists\\":false}\\n\' "$n"\n');
    const b = p.backend({ generator: { type: 'command', command: [gen], timeout: 5000 } });
    const n = node('thing', { name: 'a' });
    await observe(b, n);
    const first = onlyScript(p);
    p.store.artifacts.review(first, 'rejected', 'ana', null);
    expect(heldReason(await observe(b, n))).toContain('awaits review');
    const all = p.store.artifacts.list();
    expect(all).toHaveLength(2);
    expect(all[1]!.content).toContain('# version 2');
  });
});

describe('generator failures are classified faults', () => {
  const cases = [
    { name: 'non-zero exit', command: ['sh', '-c', 'echo no model >&2; exit 2'], want: { class: 'permanent', code: 'generator-failed' }, message: /status 2: no model/ },
    { name: 'timeout', command: ['sh', '-c', 'sleep 5'], timeout: 200, want: { class: 'transient', code: 'generator-timeout' }, message: /timed out/ },
    { name: 'empty output', command: ['sh', '-c', 'cat > /dev/null'], want: { class: 'permanent', code: 'generator-bad-output' }, message: /no script/ },
    { name: 'garbage (no interpreter line)', command: ['sh', '-c', 'echo "Sure! Here is your script:"'], want: { class: 'permanent', code: 'generator-bad-output' }, message: /interpreter line/ },
    { name: 'oversized output', command: ['sh', '-c', 'printf "#!/bin/sh\\n"; head -c 5000 /dev/zero | tr "\\0" x'], maxScriptBytes: 1000, want: { class: 'permanent', code: 'generator-bad-output' }, message: /more than 1000 bytes/ },
    { name: 'missing program', command: ['./no-such-generator'], want: { class: 'permanent', code: 'generator-failed' }, message: /could not be started/ },
  ];
  it.each(cases)('$name', async ({ command, timeout, maxScriptBytes, want, message }) => {
    const p = project();
    const b = p.backend({ generator: { type: 'command', command, timeout: timeout ?? 5000, ...(maxScriptBytes === undefined ? {} : { maxScriptBytes }) } });
    const obs = await observe(b, node('thing', { name: 'a' }));
    const f = faultOf(obs);
    expect(f).toMatchObject(want);
    expect(f.message).toMatch(message);
    expect(p.store.artifacts.list()).toEqual([]);
    // The fault policy reads the class: a first failure is retried, never a crash.
    expect(decide(f as Fault, 1, () => 0.5).action).toBe('retry');
  });
});

describe('a misbehaving generated script is recorded and surfaces as a classified fault', () => {
  const cases = [
    { name: 'timeout', body: 'sleep 5', timeout: 300, want: { class: 'transient', code: 'timeout' } },
    { name: 'non-zero exit', body: 'echo "disk full" >&2; exit 9', want: { class: 'permanent', code: 'exit-9' } },
    { name: 'EX_TEMPFAIL', body: 'echo "try later" >&2; exit 75', want: { class: 'transient', code: 'exit-75' } },
    { name: 'garbage output', body: 'echo "created it!"', want: { class: 'permanent', code: 'bad-output' } },
  ];
  it.each(cases)('$name', async ({ body, timeout, want }) => {
    const p = project();
    const script = p.file('bad.sh', `#!/bin/sh\ncat > /dev/null\nif [ "$1" = read ]; then echo '{"exists": false}'; exit 0; fi\n${body}\n`);
    const b = p.backend({ generator: printing(script), ...(timeout === undefined ? {} : { timeout }) });
    const n = node('thing', { name: 'a' }, 'dev');
    const hash = await approvedScript(p, b, n);
    const f = faultOf(await b.create(n, opContext()));
    expect(f).toMatchObject(want);
    const last = p.store.artifacts.runs(hash).at(-1)!;
    expect(last).toMatchObject({ action: 'create', outcome: 'failure', counted: true });
    expect(last.detail).toBe(f.message);
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 0, failures: 1 });
    // Retried per the fault policy: transient without limit, permanent until its budget is spent.
    expect(decide(f as Fault, 1, () => 0.5).action).toBe('retry');
    expect(decide(f as Fault, 3, () => 0.5).action).toBe(want.class === 'permanent' ? 'hold' : 'retry');
  });

  it('a secret from an allowlisted variable, quoted by the script or the generator, reaches neither a fault nor the ledger', async () => {
    process.env.DS_TEST_TOKEN = 'tok-S3CRET-4711';
    try {
      const p = project();
      const script = p.file('quote.sh', `#!/bin/sh\ncat > /dev/null\nif [ "$1" = read ]; then echo '{"exists": false}'; exit 0; fi\necho "token $DS_TEST_TOKEN refused" >&2; exit 77\n`);
      const b = p.backend({ generator: printing(script), env: ['PATH', 'DS_TEST_TOKEN'] });
      const n = node('thing', { name: 'a' }, 'dev');
      const hash = await approvedScript(p, b, n);
      const f = faultOf(await b.create(n, opContext()));
      expect(f).toMatchObject({ class: 'auth', message: 'token <secret> refused' });
      expect(p.store.artifacts.runs(hash).at(-1)!.detail).toBe('token <secret> refused');

      const generator = { type: 'command', command: ['sh', '-c', 'cat > /dev/null; echo "invalid API key $DS_TEST_TOKEN" >&2; exit 3'], timeout: 5000 };
      const g = faultOf(await observe(project().backend({ generator, env: ['PATH', 'DS_TEST_TOKEN'] }), n));
      expect(g.message).toContain('invalid API key <secret>');
      expect(g.message).not.toContain('S3CRET');
    } finally {
      delete process.env.DS_TEST_TOKEN;
    }
  });

  it('an update that prints no outputs keeps those create recorded (the id the next read finds the resource by)', async () => {
    const p = project();
    // Its read finds the resource only by the id create printed: the read right after each run is given it too.
    const script = p.file(
      'by-id.sh',
      `#!/bin/sh\nreq=$(cat)\ncase "$1" in create) echo '{"outputs": {"id": "r-1"}}';; update) echo '{"outputs": {}}';; read) case "$req" in *'"id":"r-1"'*) echo '{"exists": true, "state": {"name": "a"}}';; *) echo '{"exists": false}';; esac;; esac\n`,
    );
    const b = p.backend({ generator: printing(script) });
    const n = node('thing', { name: 'a' }, 'dev');
    await observe(b, n);
    p.store.artifacts.review(onlyScript(p), 'approved', 'ana', null);
    const created = await b.create(n, opContext());
    expect(created).toEqual({ status: 'done', outputs: { id: 'r-1' } });
    const recorded = created.status === 'done' ? created.outputs : {};
    expect(await b.update(n, [], { ...opContext(), outputsOf: () => recorded })).toEqual({ status: 'done', outputs: { id: 'r-1' } });
  });

  // Trust was earned by exit status alone: a script whose update exited 0 and changed nothing reached
  // 51 "successes" and runs-alone in dev, then updated a prod node without a per-run approval.
  const SHORT_OF_IT = [
    {
      name: 'an update that changes nothing (its read still finds the drift)',
      verb: 'update' as const,
      read: `echo '{"exists": true, "state": {"name": "WRONG"}}'`,
      want: { class: 'permanent', code: 'script-not-achieved' },
      message: /^script [0-9a-f]{12}: update exited 0 but did not do it: its read afterwards still finds input\.name "WRONG", not "right"$/,
    },
    {
      name: 'a create that makes nothing',
      verb: 'create' as const,
      read: `echo '{"exists": false}'`,
      want: { class: 'permanent', code: 'script-not-achieved' },
      message: /: create exited 0 but did not do it: its read afterwards finds no resource$/,
    },
    {
      name: 'a delete that removes nothing',
      verb: 'delete' as const,
      read: `echo '{"exists": true, "state": {"name": "right"}}'`,
      want: { class: 'permanent', code: 'script-not-achieved' },
      message: /: delete exited 0 but did not do it: its read afterwards still finds the resource$/,
    },
    {
      name: 'a create whose read then fails',
      verb: 'create' as const,
      read: 'echo "no such table" >&2; exit 3',
      want: { class: 'permanent', code: 'exit-3' },
      message: /: create exited 0, but its read afterwards failed, so it did not show that it did it: no such table$/,
    },
  ];
  it.each(SHORT_OF_IT)('$name: a failure of the script, not a success, whatever its exit status', async ({ verb, read, want, message }) => {
    const p = project();
    const script = p.file('lazy.sh', `#!/bin/sh\ncat > /dev/null\ncase "$1" in read) ${read};; create|update) echo '{"outputs": {}}';; delete) ;; esac\n`);
    const b = p.backend({ generator: printing(script) });
    const n = node('thing', { name: 'right' }, 'dev');
    const hash = await approvedScript(p, b, n);
    for (let i = 0; i < 3; i++) {
      const r = verb === 'create' ? await b.create(n, opContext()) : verb === 'update' ? await b.update(n, [], opContext()) : await b.delete(n, opContext());
      const f = faultOf(r);
      expect(f).toMatchObject(want);
      expect(f.message).toMatch(message);
      // A create that exited 0 stays pending: the next read is told it was interrupted (never a second create).
      expect(f.cutShort).toBe(verb === 'create' ? true : undefined);
      expect(p.store.artifacts.runs(hash).findLast((run) => run.action === verb)).toMatchObject({ outcome: 'failure', counted: true, exitCode: 0, detail: f.message });
    }
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 0, failures: 3 });
  });

  it('an update whose read afterwards differs only in a field the node ignores is a success', async () => {
    const p = project();
    const script = p.file('partial.sh', `#!/bin/sh\ncat > /dev/null\ncase "$1" in read) echo '{"exists": true, "state": {"name": "right", "size": 1}}';; update) echo '{"outputs": {}}';; esac\n`);
    const b = p.backend({ generator: printing(script) });
    const n = node('thing', { name: 'right', size: 2 }, 'dev');
    const ignoring = { ...n, settings: { ...n.settings, ignoreFields: ['input.size'] } };
    await observe(b, ignoring);
    const hash = onlyScript(p);
    p.store.artifacts.review(hash, 'approved', 'ana', null);
    expect(await b.update(ignoring, [], opContext())).toEqual({ status: 'done', outputs: {} });
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 1, failures: 0 });
    // Not ignored, the same answer falls short.
    expect(faultOf(await b.update(n, [], opContext()))).toMatchObject({ code: 'script-not-achieved', message: expect.stringContaining('input.size 1, not 2') });
  });

  it('an aborted run is recorded but is not a trial', async () => {
    const p = project();
    const script = p.file('slow.sh', '#!/bin/sh\ncat > /dev/null\nif [ "$1" = read ]; then echo \'{"exists": false}\'; exit 0; fi\nsleep 5\n');
    const b = p.backend({ generator: printing(script) });
    const n = node('thing', { name: 'a' });
    const hash = await approvedScript(p, b, n);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 200);
    expect(faultOf(await b.create(n, opContext(abort.signal)))).toMatchObject({ class: 'transient', code: 'aborted' });
    expect(p.store.artifacts.runs(hash).at(-1)).toMatchObject({ outcome: 'aborted', counted: false });
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 0, failures: 0 });
  });
});

describe.skipIf(!hasJq)('the built-in templates', () => {
  it('file: create, up to date, drift after a hand edit, update, delete', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', { path: 'etc/motd', content: 'line one\n\n' });
    await observe(b, n);
    p.store.artifacts.review(onlyScript(p), 'approved', 'ana', null);
    expect((await b.create(n, opContext())).status).toBe('done');
    expect(readFileSync(join(p.dir, 'root/etc/motd'), 'utf8')).toBe('line one\n\n');
    expect(await observe(b, n)).toEqual({ status: 'upToDate', outputs: { path: 'etc/motd' } });
    writeFileSync(join(p.dir, 'root/etc/motd'), 'edited');
    expect(await observe(b, n)).toMatchObject({ status: 'drifted', diffs: [{ path: 'input.content', desired: 'line one\n\n', actual: 'edited' }] });
    expect((await b.update(n, [], opContext())).status).toBe('done');
    expect(await observe(b, n)).toMatchObject({ status: 'upToDate' });
    expect((await b.delete(n, opContext())).status).toBe('done');
    expect(await observe(b, n)).toEqual({ status: 'absent' });
  });

  it('json-key: one script for every value type; other keys are left alone', async () => {
    const p = project();
    const b = p.backend();
    const port = node('port', { file: 'app.json', key: 'port', value: 8080 });
    const tags = node('tags', { file: 'app.json', key: 'tags', value: ['a', 'b'] });
    await observe(b, port);
    await observe(b, tags);
    const hash = onlyScript(p);
    expect(p.store.artifacts.get(hash)!.keys).toHaveLength(2);
    p.store.artifacts.review(hash, 'approved', 'ana', null);
    expect((await b.create(port, opContext())).status).toBe('done');
    expect((await b.create(tags, opContext())).status).toBe('done');
    expect(JSON.parse(readFileSync(join(p.dir, 'root/app.json'), 'utf8'))).toEqual({ port: 8080, tags: ['a', 'b'] });
    expect(await observe(b, port)).toMatchObject({ status: 'upToDate', outputs: { file: 'app.json', key: 'port' } });
    expect((await b.delete(port, opContext())).status).toBe('done');
    expect(JSON.parse(readFileSync(join(p.dir, 'root/app.json'), 'utf8'))).toEqual({ tags: ['a', 'b'] });
  });

  // Each change reads the file and writes it back whole: two at once on one file lost one's key, and
  // the read right after the other's write failed a correct script (script-not-achieved).
  it('json-key and file nodes naming one file, however spelled, change it one at a time', async () => {
    const p = project();
    const b = p.backend();
    mkdirSync(join(p.dir, 'root'));
    symlinkSync('.', join(p.dir, 'root/link'));
    const spellings = ['app.json', './app.json', 'link/app.json', 'link//app.json'];
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const keyNodes = (base: number): BackendNode[] => keys.map((k, i) => node(`key-${k}`, { file: spellings[i % spellings.length]!, key: k, value: base + i }));
    const whole = node('whole', { path: 'link/./app.json', content: '{}' });
    await observe(b, keyNodes(0)[0]!);
    await observe(b, whole);
    for (const script of p.store.artifacts.list()) p.store.artifacts.review(script.hash, 'approved', 'ana', null);

    const created = await Promise.all(keyNodes(0).map((n) => b.create(n, opContext())));
    expect(created.map((r) => r.status)).toEqual(keys.map(() => 'done'));
    expect(JSON.parse(readFileSync(join(p.dir, 'root/app.json'), 'utf8'))).toEqual(Object.fromEntries(keys.map((k, i) => [k, i])));

    // The file template's write too waits its turn: every run finds what it did by its read right after.
    const changed = await Promise.all([b.create(whole, opContext()), ...keyNodes(10).map((n) => b.update(n, [], opContext()))]);
    expect(changed.map((r) => r.status)).toEqual([whole, ...keys].map(() => 'done'));
    expect(p.store.artifacts.list().map((s) => p.store.artifacts.tally(s.hash).failures)).toEqual([0, 0]);
  });

  // dirname, mv, rm and jq took a name starting with - for options: `dirname: invalid option -- 'm'`.
  it.each([
    { name: 'file: a file named -motd', input: { path: '-motd', content: 'hello\n' }, written: '-motd', outputs: { path: '-motd' } },
    { name: 'file: under a directory named -etc', input: { path: '-etc/motd', content: 'hello\n' }, written: '-etc/motd', outputs: { path: '-etc/motd' } },
    { name: 'json-key: a file named -app.json', input: { file: '-app.json', key: 'port', value: 8080 }, written: '-app.json', outputs: { file: '-app.json', key: 'port' } },
  ])('$name is made, read, updated and deleted', async ({ input, written, outputs }) => {
    const p = project();
    const b = p.backend();
    const n = node('dash', input);
    await observe(b, n);
    p.store.artifacts.review(onlyScript(p), 'approved', 'ana', null);
    expect(await observe(b, n)).toEqual({ status: 'absent' });
    expect(await b.create(n, opContext())).toEqual({ status: 'done', outputs });
    const file = join(p.dir, 'root', written);
    const made = readFileSync(file, 'utf8');
    expect(await observe(b, n)).toEqual({ status: 'upToDate', outputs });
    writeFileSync(file, 'path' in input ? 'edited' : '{"port": 1}');
    expect((await observe(b, n)).status).toBe('drifted');
    expect((await b.update(n, [], opContext())).status).toBe('done');
    expect(readFileSync(file, 'utf8')).toBe(made);
    expect((await b.delete(n, opContext())).status).toBe('done');
    expect(await observe(b, n)).toEqual({ status: 'absent' });
  });

  it('refuses a path that leaves the root (exit 64: permanent)', async () => {
    const p = project();
    const b = p.backend();
    const n = node('evil', { path: '../outside', content: 'x' });
    await observe(b, n);
    p.store.artifacts.review(onlyScript(p), 'approved', 'ana', null);
    expect(faultOf(await observe(b, n))).toMatchObject({ class: 'permanent', code: 'exit-64' });
    expect(existsSync(join(p.dir, 'outside'))).toBe(false);
  });

  // Checked as text only, a path through a link under the root to a directory elsewhere was written.
  it('refuses a path that leaves the root through a symbolic link (exit 64: permanent), writing nothing there', async () => {
    const p = project();
    const b = p.backend();
    const outside = join(p.dir, 'outside');
    mkdirSync(outside);
    mkdirSync(join(p.dir, 'root/etc'), { recursive: true });
    symlinkSync(outside, join(p.dir, 'root/etc/link'));
    const n = node('escape', { path: 'etc/link/owned', content: 'x' });
    await observe(b, n);
    p.store.artifacts.review(onlyScript(p), 'approved', 'ana', null);
    expect(faultOf(await observe(b, n))).toMatchObject({ class: 'permanent', code: 'exit-64', message: expect.stringContaining('path leaves the root through a symbolic link: etc/link/owned') });
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'exit-64' });
    expect(existsSync(join(outside, 'owned'))).toBe(false);
    // A link that stays under the root is followed as any directory.
    mkdirSync(join(p.dir, 'root/real'));
    symlinkSync('../real', join(p.dir, 'root/etc/inside'));
    const ok = node('inside', { path: 'etc/inside/motd', content: 'y' });
    expect((await b.create(ok, opContext())).status).toBe('done');
    expect(readFileSync(join(p.dir, 'root/real/motd'), 'utf8')).toBe('y');
  });

  // Called healthy, then every run failed with "unknown: ENOTDIR: not a directory, mkdir …".
  it('a root that is a regular file: unhealthy, as a local backend\'s; a run is a permanent fault naming config.root', async () => {
    const p = project();
    const rootFile = p.file('rootfile', 'not a directory\n');
    const b = p.backend({ root: 'rootfile' });
    expect(await b.health!({ signal: new AbortController().signal, log: opContext().log })).toEqual({ status: 'unhealthy', message: `${rootFile} is not a directory` });
    const n = node('motd', FILE_INPUT);
    await approvedScript(p, b, n);
    const r = await b.create(n, opContext());
    expect(faultOf(r)).toMatchObject({ class: 'permanent', code: 'ENOTDIR', message: `the scripts' working directory ${rootFile} (config.root) cannot be made: ENOTDIR` });
    expect((r as { fault: Fault }).fault.hint).toContain('config.root');
    expect(readFileSync(rootFile, 'utf8')).toBe('not a directory\n');
  });

  it('a hand-edited script file is replaced before it runs, never run', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT);
    const hash = await approvedScript(p, b, n);
    await observe(b, n);
    writeFileSync(join(p.dir, 'scripts', hash), '#!/bin/sh\necho pwned > "$PWD/pwned"\n');
    expect(await observe(b, n)).toEqual({ status: 'absent' });
    expect(existsSync(join(p.dir, 'root/pwned'))).toBe(false);
  });

  it('a script whose stored text no longer matches its hash (changed after approval) is refused, never run', async () => {
    const p = project();
    const b = p.backend();
    const n = node('motd', FILE_INPUT);
    const hash = await approvedScript(p, b, n);
    // Someone with write access to state.db swaps the reviewed text before its first run.
    const db = new Database(join(p.dir, 'state.db'));
    db.prepare('UPDATE artifacts SET content = ? WHERE hash = ?').run('#!/bin/sh\necho pwned > "$PWD/pwned"\necho \'{"exists":false}\'\n', hash);
    db.close();
    const obs = await observe(b, n);
    expect(faultOf(obs)).toMatchObject({ class: 'permanent', code: 'script-hash-mismatch' });
    expect(faultOf(await b.create(n, opContext()))).toMatchObject({ class: 'permanent', code: 'script-hash-mismatch' });
    expect(existsSync(join(p.dir, 'root/pwned'))).toBe(false);
    expect(existsSync(join(p.dir, 'scripts', hash))).toBe(false);
    // Not a trial of the reviewed script: it never ran.
    expect(p.store.artifacts.tally(hash)).toEqual({ successes: 0, failures: 0 });

    // The way out the fault names: reject it; the generator's text for this hash is stored again (the
    // genuine one), held as rejected-and-regenerated until someone reviews it afresh.
    p.store.artifacts.review(hash, 'rejected', 'ana', 'tampered');
    expect(heldReason(await observe(b, n))).toMatch(/was rejected and generator .* produced it again/);
    expect(p.store.artifacts.get(hash)!.content).not.toContain('pwned');
    p.store.artifacts.review(hash, 'approved', 'ana', 'restored');
    expect(await observe(b, n)).toEqual({ status: 'absent' });
    expect(await b.create(n, opContext())).toMatchObject({ status: 'done' });
    expect(readFileSync(join(p.dir, 'root/etc/motd'), 'utf8')).toBe('hello\n');
  });
});
