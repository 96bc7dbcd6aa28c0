import type { Logger } from 'pino';
import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { BackendNode, InfraNodeSpec, InfraNodeType } from '../../../src/infra/index.ts';
import type { NodeId, ObservationMemo, OperationContext, Outputs } from '../../../src/runtime/index.ts';

/** A node of `type` with `spec` validated by the real schema, as the goal compiler would build it. */
export function pgNode(id: string, type: InfraNodeType, spec: Record<string, unknown>, backendId = 'pg'): BackendNode {
  const parsed = specSchemas[type].parse(spec) as Record<string, unknown>;
  return {
    id,
    goal: 'test',
    spec: desiredNodeSpec({ type, ...parsed } as InfraNodeSpec, backendId),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
    source: { file: 'test.yaml', line: 1, col: 1 },
  };
}

export { captureLogger } from '../../support/backend.ts';

/** An operation context with outputs and memo stores, as the reconciler would give. */
export function opContext(
  log: Logger,
  outputs = new Map<NodeId, Outputs>(),
  signal = new AbortController().signal,
  memos = new Map<NodeId, ObservationMemo>(),
): OperationContext & { outputs: Map<NodeId, Outputs>; memos: Map<NodeId, ObservationMemo> } {
  return { signal, log, outputsOf: (id) => outputs.get(id), memoOf: (id) => memos.get(id), outputs, memos };
}
