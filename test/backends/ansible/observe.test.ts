import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { changesToDiffs, interpretRun, lineDiff, parseReport, playbookArgs, taskChanges, unsafeVarsYaml } from '../../../src/backends/ansible/index.ts';
import type { PlaybookReport } from '../../../src/backends/ansible/index.ts';
import type { ProcessOutcome } from '../../../src/infra/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';

const stats = (o: Partial<Record<'ok' | 'changed' | 'failures' | 'unreachable' | 'skipped', number>> = {}) => ({
  ok: 0, changed: 0, failures: 0, unreachable: 0, skipped: 0, ...o,
});

function report(tasks: { name: string; hosts: Record<string, object> }[], st: Record<string, ReturnType<typeof stats>>): PlaybookReport {
  return { plays: [{ play: { name: 'p' }, tasks: tasks.map((t) => ({ task: { name: t.name }, hosts: t.hosts })) }], stats: st };
}

const exited = (exitCode: number, stdout: string, stderr = ''): ProcessOutcome => ({ status: 'exited', exitCode, stdout, stdoutInvalidUtf8: false, stderr, durationMs: 1 });

function faultFrom(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    if (err instanceof FaultError) return err.fault;
    throw err;
  }
  throw new Error('expected a fault');
}

describe('unsafeVarsYaml', () => {
  it('tags every string value !unsafe at any depth and keeps other scalars as they are', () => {
    const text = unsafeVarsYaml({ a: "{{ lookup('pipe','id') }}", list: ['x', 1, true, null], deep: { k: 'v"\n' } });
    expect(text).toContain(`!unsafe "a": !unsafe "{{ lookup('pipe','id') }}"`);
    expect(text.match(/!unsafe "(\{\{|x|v)/g)).toHaveLength(3);
    // Read back without Ansible's tag, the values are unchanged.
    const customTags = [{ tag: '!unsafe', resolve: (s: string) => s }];
    expect(parse(text, { customTags })).toEqual({ a: "{{ lookup('pipe','id') }}", list: ['x', 1, true, null], deep: { k: 'v"\n' } });
  });

  it('reads back unchanged with a YAML 1.1 loader, as Ansible reads it: no key or value re-typed', () => {
    const vars = {
      no: 'top-level',
      features: { on: 1, yes: 2, off: 3, Y: 4, '0x10': 5, '1_000': 6, null: 7, '012': 8, '12:30': 'lunch', '0b101': 'x', '2024-01-01': 9, "{{ lookup('pipe','id') }}": 10 },
      values: ['on', 'no', '12:30', '2024-01-01', '0x10', '~', '', 1e21, 1e-7, 0.5, -3, 0, true, false, null],
    };
    const text = unsafeVarsYaml(vars);
    // Every key is quoted and tagged: none is a plain scalar for YAML 1.1 to resolve.
    expect(text).not.toMatch(/^\s*[^!\s-]/m);
    const customTags = [{ tag: '!unsafe', resolve: (s: string) => s }];
    expect(parse(text, { version: '1.1', customTags })).toEqual(vars);
  });
});

describe('playbookArgs', () => {
  it.each([
    { name: 'check mode adds --check --diff', opts: { playbook: '/p.yml', tags: [], mode: 'check' as const }, args: ['--check', '--diff', '/p.yml'] },
    {
      name: 'every option is --name=value, so a value starting with a dash stays a value',
      opts: { playbook: '/p.yml', inventory: ['-x', 'h,'], limit: '-web', tags: ['a', 'b'], connection: 'local', varsFile: '/t/v.yml', mode: 'apply' as const },
      args: ['--inventory=-x', '--inventory=h,', '--connection=local', '--limit=-web', '--tags=a,b', '--extra-vars=@/t/v.yml', '/p.yml'],
    },
    { name: 'a single inventory string', opts: { playbook: '/p.yml', inventory: 'localhost,', tags: [], mode: 'apply' as const }, args: ['--inventory=localhost,', '/p.yml'] },
  ])('$name', ({ opts, args }) => {
    expect(playbookArgs(opts)).toEqual(args);
  });
});

describe('taskChanges and changesToDiffs', () => {
  it.each([
    {
      name: 'one host: the path is the task name, the detail the diff',
      rep: report([{ name: 'conf', hosts: { h1: { changed: true, diff: [{ before: 'a\n', after: 'b\n', before_header: 'f', after_header: 'f' }] } } }], { h1: stats() }),
      paths: ['task:conf'],
    },
    {
      name: 'several hosts: paths are host-qualified',
      rep: report([{ name: 'conf', hosts: { h1: { changed: true }, h2: { changed: true }, h3: { changed: false } } }], { h1: stats(), h2: stats(), h3: stats() }),
      paths: ['task:conf@h1', 'task:conf@h2'],
    },
    {
      name: 'failed, skipped and unchanged results are not drift',
      rep: report([{ name: 't', hosts: { h1: { changed: true, failed: true } } }, { name: 'u', hosts: { h1: { changed: false } } }, { name: 'v', hosts: { h1: { skipped: true, changed: true } } }], { h1: stats() }),
      paths: [],
    },
    {
      name: 'two tasks with one name stay apart',
      rep: report([{ name: 'same', hosts: { h1: { changed: true } } }, { name: 'same', hosts: { h1: { changed: true } } }], { h1: stats() }),
      paths: ['task:same', 'task:same#2'],
    },
  ])('$name', ({ rep, paths }) => {
    expect(changesToDiffs(taskChanges(rep)).map((d) => d.path)).toEqual(paths);
  });

  it.each([
    { name: 'before/after text', diff: { before: 'x\ny\n', after: 'x\nz\n' }, contains: ['-y', '+z', ' x'] },
    { name: 'prepared text', diff: { prepared: 'will install nginx' }, contains: ['will install nginx'] },
    { name: 'structured before/after (file state)', diff: { before: { state: 'absent' }, after: { state: 'directory' } }, contains: ['-  "state": "absent"', '+  "state": "directory"'] },
  ])('renders a $name diff', ({ diff, contains }) => {
    const [d] = changesToDiffs(taskChanges(report([{ name: 't', hosts: { h: { changed: true, diff } } }], { h: stats() })));
    for (const c of contains) expect(d?.detail).toContain(c);
  });

  it('names Ansible temp files in headers by a fixed word, so a diff is the same on every run', () => {
    const diff = { before: 'a\n', after: 'b\n', before_header: '/etc/app.conf', after_header: '/tmp/x/local/ansible-local-123abc/tmpq1w2e3' };
    const [d] = changesToDiffs(taskChanges(report([{ name: 't', hosts: { h: { changed: true, diff } } }], { h: stats() })));
    expect(d?.detail).toBe('--- /etc/app.conf\n+++ after (rendered)\n-a\n+b');
  });

  // A hand edit of a file the playbook keeps wrote a password into it: the drift report showed it.
  it.each([
    { name: 'before/after', diff: { before: 'MODE=dev\nDB_PASSWORD=handsecret99\n', after: 'MODE=dev\n' }, shown: ['-DB_PASSWORD=<secret>', ' MODE=dev'] },
    { name: 'a prepared diff', diff: { prepared: '--- before\n+++ after\n-api_key: handsecret99\n+api_key: other-secret-1\n context' }, shown: ['-api_key: <secret>', '+api_key: <secret>', ' context', '--- before'] },
    { name: 'a private key', diff: { before: '', after: '-----BEGIN RSA PRIVATE KEY-----\nhandsecret99\n-----END RSA PRIVATE KEY-----\n' }, shown: ['+-----BEGIN RSA PRIVATE KEY-----', '+<secret>'] },
  ])('masks what looks like a secret in $name', ({ diff, shown }) => {
    const [d] = changesToDiffs(taskChanges(report([{ name: 't', hosts: { h: { changed: true, diff } } }], { h: stats() })));
    expect(d?.detail).not.toContain('handsecret99');
    expect(d?.detail).not.toContain('other-secret-1');
    for (const line of shown) expect(d?.detail?.split('\n')).toContain(line);
  });

  // Masked before the diff, a changed secret read the same on both sides: it showed as unchanged
  // context, or, alone in the change, no diff was shown at all.
  it.each([
    { name: 'alone', before: 'HOST=db\nDB_PASSWORD=handsecret99\n', after: 'HOST=db\nDB_PASSWORD=other-secret-1\n', lines: [' HOST=db', '-DB_PASSWORD=<secret>', '+DB_PASSWORD=<secret>'] },
    { name: 'beside a changed line', before: 'HOST=db2\nDB_PASSWORD=handsecret99\n', after: 'HOST=db\nDB_PASSWORD=other-secret-1\n', lines: ['-HOST=db2', '-DB_PASSWORD=<secret>', '+HOST=db', '+DB_PASSWORD=<secret>'] },
    {
      name: "in a private key's body, its armour unchanged",
      before: '-----BEGIN RSA PRIVATE KEY-----\nhandsecret99\n-----END RSA PRIVATE KEY-----\n',
      after: '-----BEGIN RSA PRIVATE KEY-----\nother-secret-1\n-----END RSA PRIVATE KEY-----\n',
      lines: [' -----BEGIN RSA PRIVATE KEY-----', '-<secret>', '+<secret>', ' -----END RSA PRIVATE KEY-----'],
    },
  ])('a changed secret is a changed line, masked on both sides: $name', ({ before, after, lines }) => {
    const [d] = changesToDiffs(taskChanges(report([{ name: 't', hosts: { h: { changed: true, diff: { before, after } } } }], { h: stats() })));
    expect(d?.detail).toBe(['--- before', '+++ after', ...lines].join('\n'));
  });

  it('collects the diffs of loop items', () => {
    const rep = report([{ name: 'loop', hosts: { h: { changed: true, results: [{ changed: true, diff: { before: 'a', after: 'b' } }, { changed: false, diff: { before: 'c', after: 'd' } }] } } }], { h: stats() });
    const detail = changesToDiffs(taskChanges(rep))[0]?.detail ?? '';
    expect(detail).toContain('+b');
    expect(detail).not.toContain('+d');
  });
});

describe('lineDiff', () => {
  it.each([
    { name: 'identical text has no lines', a: 'x\n', b: 'x\n', out: [] },
    { name: 'a created file is all additions', a: '', b: 'a\nb\n', out: ['+a', '+b'] },
    { name: 'a change keeps three lines of context and marks the gap', a: '1\n2\n3\n4\n5\n6\n7\n8\n', b: '1\n2\n3\n4\n5\n6\n7\nX\n', out: ['@@', ' 5', ' 6', ' 7', '-8', '+X'] },
  ])('$name', ({ a, b, out }) => {
    expect(lineDiff(a, b)).toEqual(out);
  });
});

describe('interpretRun', () => {
  const ok = JSON.stringify(report([{ name: 't', hosts: { h: { changed: true } } }], { h: stats({ ok: 1, changed: 1 }) }));
  it.each([
    { name: 'a failed host is permanent, with the last failing task', out: exited(2, JSON.stringify(report([{ name: 'first', hosts: { h: { failed: true, msg: 'ignored' } } }, { name: 'boom', hosts: { h: { failed: true, msg: 'disk full' } } }], { h: stats({ failures: 1 }) }))), fault: { class: 'permanent', code: 'task-failed', message: 'task "boom" failed on h: disk full' } },
    { name: 'an unreachable host is transient', out: exited(4, JSON.stringify(report([{ name: 'ping', hosts: { h: { unreachable: true, msg: 'no route' } } }], { h: stats({ unreachable: 1 }) }))), fault: { class: 'transient', code: 'host-unreachable' } },
    {
      name: 'a host whose SSH key is unknown or changed is permanent (no retry makes it known), with a hint',
      out: exited(4, JSON.stringify(report([{ name: 'ping', hosts: { h: { unreachable: true, msg: 'Failed to connect to the host via ssh: Host key verification failed.' }, other: { unreachable: true, msg: 'no route' } } }], { h: stats({ unreachable: 1 }), other: stats({ unreachable: 1 }) }))),
      fault: { class: 'permanent', code: 'host-key-unverified', message: expect.stringContaining('Host key verification failed') as unknown, hint: expect.stringContaining('known_hosts') as unknown },
    },
    {
      name: 'a refused login is auth (no retry mends a key), also beside a host merely unreachable',
      out: exited(4, JSON.stringify(report([{ name: 'ping', hosts: { h: { unreachable: true, msg: 'Failed to connect to the host via ssh: app@h: Permission denied (publickey).' }, other: { unreachable: true, msg: 'no route' } } }], { h: stats({ unreachable: 1 }), other: stats({ unreachable: 1 }) }))),
      fault: { class: 'auth', code: 'login-failed', hint: expect.stringContaining('ansible_user') as unknown },
    },
    {
      name: 'a refused become is auth',
      out: exited(2, JSON.stringify(report([{ name: 'ping', hosts: { h: { failed: true, msg: 'Incorrect su password' } } }], { h: stats({ failures: 1 }) }))),
      fault: { class: 'auth', code: 'become-failed', message: 'task "ping" failed on h: Incorrect su password' },
    },
    {
      name: 'a refused become beside a task that really failed is that failure',
      out: exited(2, JSON.stringify(report([{ name: 'ping', hosts: { h: { failed: true, msg: 'Missing sudo password' }, other: { failed: true, msg: 'disk full' } } }], { h: stats({ failures: 1 }), other: stats({ failures: 1 }) }))),
      fault: { class: 'permanent', code: 'task-failed' },
    },
    {
      name: "a module that failed to run is told by its stderr, which MODULE FAILURE's msg only points to",
      out: exited(2, JSON.stringify(report([{ name: 'ping', hosts: { h: { failed: true, msg: 'MODULE FAILURE\nSee stdout/stderr for the exact error', module_stderr: 'Traceback …\nImportError: no module named x\n' } } }], { h: stats({ failures: 1 }) }))),
      fault: { class: 'permanent', code: 'task-failed', message: 'task "ping" failed on h: MODULE FAILURE\nSee stdout/stderr for the exact error\nTraceback …\nImportError: no module named x' },
    },
    { name: 'no report and a non-zero exit is ansible-playbook\'s own error', out: exited(4, '', 'ERROR! syntax\n'), fault: { class: 'permanent', code: 'ansible-exit-4', message: 'ERROR! syntax' } },
    { name: 'a missing JSON callback says how to install it', out: exited(1, '', 'ERROR! Invalid callback for stdout specified: ansible.posix.json\n'), fault: { class: 'permanent', code: 'no-json-callback' } },
    { name: 'exit 0 without a report is bad output', out: exited(0, 'PLAY [all] ****'), fault: { class: 'permanent', code: 'bad-output' } },
    { name: 'a timeout is transient', out: { status: 'timedOut', timeoutMs: 5, stderr: '', durationMs: 5 } as const, fault: { class: 'transient', code: 'timeout' } },
    { name: 'a run on no host (every play: no hosts matched) is permanent, not a success', out: exited(0, JSON.stringify(report([], {}))), fault: { class: 'permanent', code: 'no-hosts' } },
  ])('$name', ({ out, fault }) => {
    expect(faultFrom(() => interpretRun(out))).toMatchObject(fault);
  });

  const stopped = [
    { name: 'killed at its timeout', out: { status: 'timedOut', timeoutMs: 5, stderr: '', durationMs: 5 } },
    { name: 'aborted (a stop)', out: { status: 'aborted', stderr: '', durationMs: 5 } },
    { name: 'killed by a signal', out: { status: 'signaled', signal: 'SIGKILL', stdout: '', stderr: '', durationMs: 5 } },
    { name: 'killed for printing too much', out: { status: 'outputTooLarge', maxOutputBytes: 5, stderr: '', durationMs: 5 } },
  ] satisfies { name: string; out: ProcessOutcome }[];
  it.each(stopped)("a create's run $name is cut short: it may have run tasks check mode cannot see", ({ out }) => {
    expect(faultFrom(() => interpretRun(out, { create: true }))).toMatchObject({ cutShort: true });
  });
  it.each(stopped)('a check or update run $name is not: no create is left pending', ({ out }) => {
    expect(faultFrom(() => interpretRun(out))).not.toHaveProperty('cutShort');
  });
  it("a create's run that failed a task is no cut-short run: it ended, and said how", () => {
    const failed = exited(2, JSON.stringify(report([{ name: 'boom', hosts: { h: { failed: true, msg: 'x' } } }], { h: stats({ failures: 1 }) })));
    expect(faultFrom(() => interpretRun(failed, { create: true }))).not.toHaveProperty('cutShort');
  });

  it('a run on no host with tags says the tags may be why: no task has them reads the same as no host matched', () => {
    const f = faultFrom(() => interpretRun(exited(0, JSON.stringify(report([], {}))), { tags: ['deploy'] }));
    expect(f).toMatchObject({ code: 'no-hosts', message: expect.stringContaining('or no task has the tags deploy') as unknown, hint: expect.stringContaining('the tags') as unknown });
  });

  it('a successful run counts ok and changed over hosts', () => {
    expect(interpretRun(exited(0, ok)).outputs).toEqual({ ok: 1, changed: 1, skipped: 0, hosts: 1 });
  });

  it('names the tasks check mode skipped because it cannot simulate them, not those a condition skipped', () => {
    const rep = report(
      [
        { name: 'cmd', hosts: { h: { skipped: true, msg: 'Command would have run if not in check mode' } } },
        { name: 'when', hosts: { h: { skipped: true, skip_reason: 'Conditional result was False' } } },
      ],
      { h: stats({ skipped: 2 }) },
    );
    expect(interpretRun(exited(0, JSON.stringify(rep))).unsimulated).toEqual(['cmd']);
  });

  it('finds the report after a line another plugin printed', () => {
    expect(parseReport(`some plugin noise\n${ok}`)?.stats).toEqual({ h: stats({ ok: 1, changed: 1 }) });
  });
});
