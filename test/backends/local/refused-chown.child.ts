// Run by local-backend.test.ts as an unprivileged user (as `nobody` when the tests run as root):
// creates, in the backend root `<base>/root`, a file owned by root, which such a user may not
// chown, and prints what came of it as JSON: the fault and what the root holds afterwards.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { LocalBackend } from '../../../src/backends/local/index.ts';
import { desiredNodeSpec } from '../../../src/infra/index.ts';
import type { InfraNode } from '../../../src/infra/index.ts';
import { FaultError } from '../../../src/runtime/index.ts';
import type { Fault } from '../../../src/runtime/index.ts';

const base = process.argv[2];
if (base === undefined) throw new Error('usage: refused-chown.child.ts BASE_DIR');
const log = pino({ level: 'silent' });
const backend = new LocalBackend({ root: 'root' }, { id: 'local', cwd: base, log });
const node: InfraNode = {
  id: 'f',
  goal: 'test',
  spec: desiredNodeSpec({ type: 'local.file', path: 'f.txt', content: 'x', mode: '0644', owner: '0' }, 'local'),
  dependsOn: [],
  settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
  source: { file: 'goals/test.yaml', line: 1, col: 1 },
};
let fault: Fault | undefined;
try {
  const r = await backend.create(node, { signal: new AbortController().signal, log, outputsOf: () => undefined });
  if (r.status === 'failed') fault = r.fault;
} catch (err) {
  if (!(err instanceof FaultError)) throw err;
  fault = err.fault;
}
await backend.close();
const entries = await readdir(join(base, 'root'), { recursive: true }).catch(() => []);
process.stdout.write(`${JSON.stringify({ uid: process.getuid?.(), fault: fault ?? null, entries: entries.sort() })}\n`);
