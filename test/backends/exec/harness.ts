import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { BackendContext, BackendNode, InfraNodeSpecOf } from '../../../src/infra/index.ts';
import type { OperationContext, Outputs } from '../../../src/runtime/index.ts';

export const silentLog = pino({ level: 'silent' });

/** A `generic.resource` node, its spec validated by the real schema. */
export function genericNode(id: string, raw: unknown): BackendNode {
  const spec = { type: 'generic.resource' as const, ...specSchemas['generic.resource'].parse(raw) } satisfies InfraNodeSpecOf<'generic.resource'>;
  return {
    id,
    goal: 'test',
    spec: desiredNodeSpec(spec, 'exec'),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
    source: { file: 'test.yaml', line: 1, col: 1 },
  };
}

export function backendContext(cwd: string, env: NodeJS.ProcessEnv = process.env): BackendContext {
  return { id: 'exec', cwd, log: silentLog, stateDir: cwd, env };
}

/** An operation context whose recorded outputs the test controls. */
export function opContext(recorded: Map<string, Outputs> = new Map(), signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, log: silentLog, outputsOf: (id) => recorded.get(id) };
}

/** True while `pid` is a live process (a zombie waiting to be reaped counts as dead). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Waits until `check` holds, polling, for at most `ms`. */
export async function eventually(check: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}
