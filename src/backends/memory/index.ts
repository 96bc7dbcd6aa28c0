import { INFRA_NODE_TYPES } from '../../infra/index.ts';
import type { BackendFactory } from '../../infra/index.ts';
import { MEMORY_OUTPUTS, MemoryBackend } from './backend.ts';
import { memoryConfigSchema } from './config.ts';
import type { MemoryConfig } from './config.ts';

/** `type: memory`: every node type, held in process; fault injection and latency for tests and benchmarks. */
export const memoryBackendFactory: BackendFactory<MemoryConfig> = {
  type: 'memory',
  kinds: INFRA_NODE_TYPES,
  get configSchema() {
    return memoryConfigSchema();
  },
  outputs: MEMORY_OUTPUTS,
  description: 'In-process resources for tests and benchmarks, with seeded fault injection and latency.',
  // Latency, injected faults and their seed say how calls go; the resources are the process's own.
  identity: () => ({}),
  create: (config, ctx) => new MemoryBackend(config, ctx),
};

export { MemoryBackend, outputsFor } from './backend.ts';
export type { MemoryCallCounts, MemoryResource } from './backend.ts';
export { memoryConfigSchema, faultRuleSchema, MEMORY_OPS } from './config.ts';
export type { FaultRule, MemoryConfig, MemoryOp } from './config.ts';
export { diffFields } from './observe.ts';
