import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { BackendContext, BackendNode, InfraNodeSpecOf } from '../../../src/infra/index.ts';
import { backendContext as sharedBackendContext } from '../../support/backend.ts';

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
  return sharedBackendContext('exec', cwd, env);
}

export { holdsWithin as eventually, isAlive, opContext, silentLog } from '../../support/backend.ts';
