import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/backends/local/index.ts';
import { watchBackends } from '../../src/cli/commands/run.ts';
import { desiredNodeSpec } from '../../src/infra/index.ts';
import type { InfraBackend, InfraNode } from '../../src/infra/index.ts';
import { fileNode, log, opCtx } from '../backends/local/helpers.ts';

const dirs: string[] = [];
const backends: InfraBackend[] = [];
afterEach(async () => {
  for (const b of backends.splice(0)) await b.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** `id`'s file `path` through the local backend instance `backend`. */
function fileOf(backend: string, id: string, path: string): InfraNode {
  const node = fileNode(id, path, `${id}\n`);
  return { ...node, spec: desiredNodeSpec(node.spec.spec, backend) };
}

describe('the daemon watching its backends, graph after graph', () => {
  // Each instance takes the nodes it is given as those it manages now (`InfraBackend.watch`): one whose
  // nodes are all gone from the goals must be told so, or it keeps claiming their files.
  it('an instance whose nodes are all gone is given none: a removed node claims no file there', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ds-watch-backends-'));
    dirs.push(base);
    // In `one`, `realdir/` and, made by hand, `alias` leading to it.
    mkdirSync(join(base, 'one', 'realdir'), { recursive: true });
    symlinkSync('realdir', join(base, 'one', 'alias'));
    const one = new LocalBackend({ root: 'one' }, { id: 'one', cwd: base, log });
    const two = new LocalBackend({ root: 'two' }, { id: 'two', cwd: base, log });
    backends.push(one, two);
    const map = new Map<string, InfraBackend>([
      ['one', one],
      ['two', two],
    ]);

    const stop = watchBackends(map, [fileOf('one', 'a', 'realdir/f'), fileOf('two', 'x', 'x')], () => undefined, log);
    // While `a` is in the goals, a path through the link to its file is found sharing it.
    const b = fileOf('one', 'b', 'alias/f');
    expect((await one.observe([b], opCtx())).get('b')).toMatchObject({ status: 'failed', fault: { code: 'duplicate-resource' } });
    // The next graph has nothing of `one`.
    stop();
    watchBackends(map, [fileOf('two', 'x', 'x')], () => undefined, log);
    expect((await one.observe([b], opCtx())).get('b')).toEqual({ status: 'absent' });
  });
});
