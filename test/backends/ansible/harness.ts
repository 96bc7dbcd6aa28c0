import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { BackendContext, BackendNode, InfraNodeSpecOf } from '../../../src/infra/index.ts';
import type { OperationContext, Outputs } from '../../../src/runtime/index.ts';

export const silentLog = pino({ level: 'silent' });

/** Whether ansible-playbook can run here; the integration tests skip (loudly) without it. */
export const hasAnsible = spawnSync('ansible-playbook', ['--version'], { stdio: 'ignore' }).status === 0;

/** An `ansible.playbook` node, its spec validated by the real schema. */
export function playbookNode(id: string, raw: unknown): BackendNode {
  const spec = { type: 'ansible.playbook' as const, ...specSchemas['ansible.playbook'].parse(raw) } satisfies InfraNodeSpecOf<'ansible.playbook'>;
  return {
    id,
    goal: 'test',
    spec: desiredNodeSpec(spec, 'ansible'),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] },
    source: { file: 'test.yaml', line: 1, col: 1 },
  };
}

export function backendContext(cwd: string, env: NodeJS.ProcessEnv = process.env): BackendContext {
  return { id: 'ansible', cwd, log: silentLog, stateDir: cwd, env };
}

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

export async function eventually(check: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}
