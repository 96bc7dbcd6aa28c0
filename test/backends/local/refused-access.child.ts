// Run by local-backend.test.ts as an unprivileged user (as `nobody` when the tests run as root): creates
// the file PATH in the backend root `<base>/root` and prints the fault it met as JSON (null for none).
import pino from 'pino';
import { LocalBackend } from '../../../src/backends/local/index.ts';
import { desiredNodeSpec } from '../../../src/infra/index.ts';
import type { InfraNode } from '../../../src/infra/index.ts';

const [base, path] = process.argv.slice(2);
if (base === undefined || path === undefined) throw new Error('usage: refused-access.child.ts BASE_DIR PATH');
const log = pino({ level: 'silent' });
const backend = new LocalBackend({ root: 'root' }, { id: 'local', cwd: base, log });
const node: InfraNode = {
  id: 'f',
  goal: 'test',
  spec: desiredNodeSpec({ type: 'local.file', path, content: 'x', mode: '0644' }, 'local'),
  dependsOn: [],
  settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
  source: { file: 'goals/test.yaml', line: 1, col: 1 },
};
const r = await backend.create(node, { signal: new AbortController().signal, log, outputsOf: () => undefined });
await backend.close();
process.stdout.write(`${JSON.stringify({ uid: process.getuid?.(), fault: r.status === 'failed' ? r.fault : null })}\n`);
