import { describe, expect, it } from 'vitest';
import { describeContent, lineDiff, observeDirectory, observeFile, observeSymlink } from '../../../src/backends/local/observe.ts';
import type { ActualEntry, FileExpectation } from '../../../src/backends/local/observe.ts';
import { sha256 } from '../../../src/runtime/index.ts';

const content = 'port = 8080\n';
const expectFile: FileExpectation = { absPath: '/r/app.toml', content, size: content.length, sha256: sha256(content), mode: 0o644 };
const file = (over: Partial<Extract<ActualEntry, { kind: 'file' }>> = {}): ActualEntry => ({
  kind: 'file',
  size: content.length,
  mode: 0o100644,
  uid: 1000,
  gid: 1000,
  owner: 'app',
  group: 'app',
  sha256: sha256(content),
  text: content,
  ...over,
});

describe('observeFile', () => {
  it.each([
    { name: 'missing is absent', expect: expectFile, actual: { kind: 'missing' } as ActualEntry, status: 'absent', paths: [] },
    { name: 'same hash and mode is up to date', expect: expectFile, actual: file(), status: 'upToDate', paths: [] },
    { name: 'same size, other hash is content drift', expect: expectFile, actual: file({ sha256: sha256('port = 9090\n'), text: 'port = 9090\n' }), status: 'drifted', paths: ['content'] },
    { name: 'other size without hash is content drift', expect: expectFile, actual: file({ size: 99_999, sha256: undefined, text: undefined }), status: 'drifted', paths: ['content'] },
    { name: 'mode drift', expect: expectFile, actual: file({ mode: 0o100600 }), status: 'drifted', paths: ['mode'] },
    { name: 'owner checked only when desired', expect: expectFile, actual: file({ uid: 0, owner: 'root' }), status: 'upToDate', paths: [] },
    { name: 'owner drift', expect: { ...expectFile, owner: { name: 'app', id: 1000 } }, actual: file({ uid: 0, owner: 'root' }), status: 'drifted', paths: ['owner'] },
    { name: 'group drift', expect: { ...expectFile, group: { name: '1000', id: 1000 } }, actual: file({ gid: 5, group: 'tty' }), status: 'drifted', paths: ['group'] },
    { name: 'a directory is drift of its kind, which no update corrects', expect: expectFile, actual: { kind: 'directory', mode: 0o40755 } as ActualEntry, status: 'drifted', paths: ['kind'] },
    { name: 'a symlink is drift of its kind', expect: expectFile, actual: { kind: 'symlink', target: 'x' } as ActualEntry, status: 'drifted', paths: ['kind'] },
    { name: 'a fifo is drift of its kind', expect: expectFile, actual: { kind: 'other', what: 'fifo' } as ActualEntry, status: 'drifted', paths: ['kind'] },
  ])('$name', ({ expect: e, actual, status, paths }) => {
    const obs = observeFile(e, actual);
    expect(obs.status).toBe(status);
    expect(obs.status === 'drifted' ? obs.diffs.map((d) => d.path) : []).toEqual(paths);
  });

  it('says what stands in the way of a kind drift, and that it is never corrected', () => {
    expect(observeFile(expectFile, { kind: 'directory', mode: 0o40755 })).toEqual({
      status: 'drifted',
      diffs: [
        {
          path: 'kind',
          desired: 'file',
          actual: 'directory',
          cannotCorrect: '/r/app.toml is a directory, not a file; refusing to replace it; remove or move the directory by hand if the file should take its place',
        },
      ],
      outputs: { path: '/r/app.toml', sha256: null },
    });
  });

  it('describes content by short hash and shows a line diff for small text', () => {
    const obs = observeFile(expectFile, file({ sha256: sha256('port = 9090\n'), text: 'port = 9090\n' }));
    expect(obs.status === 'drifted' ? obs.diffs[0] : undefined).toEqual({
      path: 'content',
      desired: describeContent(sha256(content), content.length),
      actual: describeContent(sha256('port = 9090\n'), content.length),
      detail: '--- actual\n+++ desired\n@@ line 1 @@\n-port = 9090\n+port = 8080',
    });
    expect(describeContent('ab'.repeat(32), 12)).toBe(`sha256:${'ab'.repeat(6)}… (12 bytes)`);
  });

  it('reports outputs with the absolute path and the hash', () => {
    expect(observeFile(expectFile, file())).toEqual({ status: 'upToDate', outputs: { path: '/r/app.toml', sha256: sha256(content) } });
  });
});

describe('observeDirectory', () => {
  it.each([
    { name: 'missing is absent', actual: { kind: 'missing' } as ActualEntry, status: 'absent' },
    { name: 'same mode is up to date', actual: { kind: 'directory', mode: 0o40755 } as ActualEntry, status: 'upToDate' },
    { name: 'other mode is drift', actual: { kind: 'directory', mode: 0o40700 } as ActualEntry, status: 'drifted' },
    { name: 'a file is drift of its kind', actual: file(), status: 'drifted' },
  ])('$name', ({ actual, status }) => {
    expect(observeDirectory({ absPath: '/r/d', mode: 0o755 }, actual).status).toBe(status);
  });

  it('reports mode drift as octal strings', () => {
    const obs = observeDirectory({ absPath: '/r/d', mode: 0o755 }, { kind: 'directory', mode: 0o40700 });
    expect(obs).toEqual({ status: 'drifted', diffs: [{ path: 'mode', desired: '0755', actual: '0700' }], outputs: { path: '/r/d' } });
  });

  it('something else where it should be keeps what lies in it waiting (blocksDependents); other drift of a directory, or of a file, does not', () => {
    const kind = (obs: ReturnType<typeof observeDirectory>): unknown => (obs.status === 'drifted' ? obs.diffs[0] : undefined);
    for (const actual of [{ kind: 'symlink', target: '/elsewhere' }, file(), { kind: 'other', what: 'fifo' }] as ActualEntry[]) {
      expect(kind(observeDirectory({ absPath: '/r/d', mode: 0o755 }, actual))).toMatchObject({ path: 'kind', desired: 'directory', cannotCorrect: expect.any(String), blocksDependents: true });
    }
    expect(kind(observeDirectory({ absPath: '/r/d', mode: 0o755 }, { kind: 'directory', mode: 0o40700 }))).not.toHaveProperty('blocksDependents');
    expect(kind(observeFile(expectFile, { kind: 'symlink', target: 'x' } as ActualEntry))).not.toHaveProperty('blocksDependents');
    expect(kind(observeSymlink({ absPath: '/r/l', target: 'a/b' }, { kind: 'directory', mode: 0o40755 }))).not.toHaveProperty('blocksDependents');
  });
});

describe('observeSymlink', () => {
  it.each([
    { name: 'missing is absent', actual: { kind: 'missing' } as ActualEntry, status: 'absent' },
    { name: 'same target is up to date', actual: { kind: 'symlink', target: 'a/b' } as ActualEntry, status: 'upToDate' },
    { name: 'other target is drift', actual: { kind: 'symlink', target: 'a/c' } as ActualEntry, status: 'drifted' },
    { name: 'a directory is drift of its kind', actual: { kind: 'directory', mode: 0o40755 } as ActualEntry, status: 'drifted' },
  ])('$name', ({ actual, status }) => {
    expect(observeSymlink({ absPath: '/r/l', target: 'a/b' }, actual).status).toBe(status);
  });
});

describe('lineDiff', () => {
  it.each([
    { name: 'one changed line in the middle', actual: 'a\nb\nc', desired: 'a\nx\nc', out: '--- actual\n+++ desired\n@@ line 2 @@\n-b\n+x' },
    { name: 'an added line', actual: 'a\nc', desired: 'a\nb\nc', out: '--- actual\n+++ desired\n@@ line 2 @@\n+b' },
    { name: 'a removed line', actual: 'a\nb\nc', desired: 'a\nc', out: '--- actual\n+++ desired\n@@ line 2 @@\n-b' },
    { name: 'a kept line between changes', actual: 'x\nk\ny\n', desired: 'p\nk\nq\n', out: '--- actual\n+++ desired\n@@ line 1 @@\n-x\n+p\n k\n-y\n+q' },
    { name: 'a final newline missing', actual: 'a\nb', desired: 'a\nb\n', out: '--- actual\n+++ desired\n@@ line 2 @@\n-b\n\\ No newline at end of file\n+b' },
    { name: 'a final newline wanted away', actual: 'a\nb\n', desired: 'a\nb', out: '--- actual\n+++ desired\n@@ line 2 @@\n-b\n+b\n\\ No newline at end of file' },
    { name: 'an extra empty last line', actual: 'a\nb\n\n', desired: 'a\nb\n', out: '--- actual\n+++ desired\n@@ line 3 @@\n-' },
    { name: 'a line added after one with no newline', actual: 'a', desired: 'a\nb', out: '--- actual\n+++ desired\n@@ line 1 @@\n-a\n\\ No newline at end of file\n+a\n+b\n\\ No newline at end of file' },
    { name: 'an empty file', actual: '', desired: 'a\n', out: '--- actual\n+++ desired\n@@ line 1 @@\n+a' },
    // A hand edit that writes a secret in: the report is logged and stored, the secret is not. A name is read by its
    // words: MONKEY has KEY in it, but not as a word of its own.
    {
      name: 'secrets written in by hand, masked by the name of their setting',
      actual: 'PORT=8080\nDB_PASSWORD=hunter2-supersecret\nexport API_TOKEN="abcd1234"\napi_key: k3y-value\nDEBUG_AUTH=false\nMONKEY=banana\n',
      desired: 'PORT=8080\n',
      out: '--- actual\n+++ desired\n@@ line 2 @@\n-DB_PASSWORD=<secret>\n-export API_TOKEN=<secret>\n-api_key: <secret>\n-DEBUG_AUTH=false\n-MONKEY=banana',
    },
    {
      name: 'secrets in a CRLF file (its CR kept) and under quoted names (JSON, one or more pairs a line)',
      actual: 'a\r\nDB_PASSWORD=hunter2secret\r\n{"password": "jsonsecret123", "db_password":"x2secret\\"value", "user": "ana"}\r\n"api_key": k3y-value\r\n{"debug_auth": "false"}\n',
      desired: 'a\r\n',
      out: '--- actual\n+++ desired\n@@ line 2 @@\n-DB_PASSWORD=<secret>\r\n-{"password": "<secret>", "db_password":"<secret>", "user": "ana"}\r\n-"api_key": <secret>\r\n-{"debug_auth": "false"}',
    },
    {
      name: 'secrets inside a line: a URL\'s password, an XML element, a command-line option',
      actual:
        'a\nDATABASE_URL=postgres://app:urlpass123@db:5432/app\nredis_url: redis://:redispw777@cache:6379/0 and https://example.com/x@y\n<db><password>xmlpw123</password><user>ana</user></db>\nExecStart=/usr/bin/app --password=clipw1234 --api-key "k y" --port 80 --no-password-prompt\n',
      desired: 'a\n',
      out:
        '--- actual\n+++ desired\n@@ line 2 @@\n-DATABASE_URL=postgres://app:<secret>@db:5432/app\n-redis_url: redis://:<secret>@cache:6379/0 and https://example.com/x@y\n-<db><password><secret></password><user>ana</user></db>\n-ExecStart=/usr/bin/app --password=<secret> --api-key <secret> --port 80 --no-password-prompt',
    },
    {
      name: 'a Spring value on a line of its own, the start tag that names it in the common head',
      actual: '<property name="password">\n  <value>actual-pw</value>\n</property>',
      desired: '<property name="password">\n  <value>desired-pw</value>\n</property>',
      out: '--- actual\n+++ desired\n@@ line 2 @@\n-  <value><secret></value>\n+  <value><secret></value>',
    },
    {
      name: 'the body of a private key, its armour in the common head',
      actual: '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQ\n-----END PRIVATE KEY-----',
      desired: '-----BEGIN PRIVATE KEY-----\nMIIEvgIBADANBgkqhkiG9w0BAQ\n-----END PRIVATE KEY-----',
      out: '--- actual\n+++ desired\n@@ line 2 @@\n-<secret>\n+<secret>',
    },
  ])('$name', ({ actual, desired, out }) => {
    expect(lineDiff(actual, desired)).toBe(out);
  });
});
