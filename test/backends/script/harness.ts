import { afterAll } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { scriptBackendFactory, scriptConfigSchema } from '../../../src/backends/script/index.ts';
import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { BackendNode, InfraBackend } from '../../../src/infra/index.ts';
import { SqliteStateStore } from '../../../src/runtime/index.ts';
import type { Observation, OperationContext, ProvisionResult } from '../../../src/runtime/index.ts';

export const silentLog = pino({ level: 'silent' });

// Every temp project is removed when the test file finishes (stores closed first).
const made: { dir: string; store: SqliteStateStore }[] = [];
afterAll(() => {
  for (const { dir, store } of made) {
    try {
      store.close();
    } catch {
      // closed by the test already
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A temp project: a state dir whose state.db the backend and the test share, and a root for the scripts. */
export function project(): { dir: string; store: SqliteStateStore; backend(config?: Record<string, unknown>): InfraBackend; file(name: string, text: string): string } {
  const dir = mkdtempSync(join(tmpdir(), 'ds-script-test-'));
  const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: false });
  made.push({ dir, store });
  return {
    dir,
    store,
    backend: (config = {}) =>
      scriptBackendFactory.create(scriptConfigSchema().parse({ root: 'root', ...config }), { id: 'scripts', cwd: dir, log: silentLog, stateDir: dir, env: process.env }),
    file: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      chmodSync(path, 0o755);
      return path;
    },
  };
}

/** A `generic.resource` node for the script backend, in a goal of `environment`. */
export function node(id: string, input: Record<string, unknown>, environment = 'dev'): BackendNode {
  const spec = { type: 'generic.resource' as const, ...specSchemas['generic.resource'].parse({ input }) };
  return {
    id,
    goal: 'test',
    spec: desiredNodeSpec(spec, 'scripts', {}, environment),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
    source: { file: 'test.yaml', line: 1, col: 1 },
  };
}

export function opContext(signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, log: silentLog, outputsOf: () => undefined };
}

export async function observe(b: InfraBackend, n: BackendNode): Promise<Observation> {
  return (await b.observe([n], opContext())).get(n.id)!;
}

export function faultOf(r: ProvisionResult | Observation): { class: string; code: string | undefined; message: string; cutShort: true | undefined } {
  if (r.status !== 'failed') throw new Error(`expected a failure, got ${JSON.stringify(r)}`);
  return { class: r.fault.class, code: r.fault.code, message: r.fault.message, cutShort: r.fault.cutShort };
}

export function heldReason(r: Observation): string {
  if (r.status !== 'indeterminate') throw new Error(`expected held (indeterminate), got ${JSON.stringify(r)}`);
  return r.reason;
}

/** A generator command that ignores its request and prints `scriptFile`. */
export function printing(scriptFile: string): { type: 'command'; command: string[]; timeout: number } {
  return { type: 'command', command: ['sh', '-c', 'cat > /dev/null; cat "$0"', scriptFile], timeout: 5000 };
}
