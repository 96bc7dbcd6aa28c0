import { spawnSync } from 'node:child_process';
import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { BackendContext, BackendNode, InfraNodeSpecOf } from '../../../src/infra/index.ts';
import { backendContext as sharedBackendContext } from '../../support/backend.ts';

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
  return sharedBackendContext('ansible', cwd, env);
}

export { holdsWithin as eventually, isAlive, opContext, silentLog } from '../../support/backend.ts';

/**
 * Goals with one `ansible.playbook` node `web` running `site.yml` on localhost in `dir` (its cwd, and the
 * extra var `dir`); `timeout`: the backend's, for each run.
 */
export function oneLocalPlaybook(dir: string, timeout = '60s'): string {
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ansible }
spec: { type: ansible, config: { timeout: ${timeout}, cwd: ${JSON.stringify(dir)} } }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: hosts }
spec:
  nodes:
    - id: web
      type: ansible.playbook
      backend: ansible
      spec: { playbook: site.yml, inventory: "localhost,", connection: local, extraVars: { dir: ${JSON.stringify(dir)} } }
`;
}
