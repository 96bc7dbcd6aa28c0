import pino from 'pino';
import { desiredNodeSpec, specSchemas } from '../../../src/infra/index.ts';
import type { InfraNode, InfraNodeSpec, InfraNodeType } from '../../../src/infra/index.ts';
import type { OperationContext } from '../../../src/runtime/index.ts';

export const log = pino({ level: 'silent' });

export function opCtx(signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, log, outputsOf: () => undefined };
}

/** A spec of `type` with the schema's defaults applied, as the goal compiler would produce it. */
export function specOf(type: InfraNodeType, raw: Record<string, unknown>): InfraNodeSpec {
  return { type, ...(specSchemas[type].parse(raw) as object) } as InfraNodeSpec;
}

export function nodeOf(id: string, spec: InfraNodeSpec, backendId = 'mem'): InfraNode {
  return {
    id,
    goal: 'test',
    spec: desiredNodeSpec(spec, backendId),
    dependsOn: [],
    settings: { selfHeal: true, prune: false, deletionPolicy: 'Delete', ignoreFields: [] },
    source: { file: 'goals/test.yaml', line: 1, col: 1 },
  };
}
