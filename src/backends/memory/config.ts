import { z } from 'zod';
import { FAULT_CLASSES, once } from '../../runtime/index.ts';

/** The operations a fault rule can target. */
export const MEMORY_OPS = ['observe', 'create', 'update', 'delete'] as const;
export type MemoryOp = (typeof MEMORY_OPS)[number];

const latencyRange = once(() =>
  z
    .strictObject({ min: z.number().min(0).describe('Shortest delay, in milliseconds.'), max: z.number().min(0).describe('Longest delay, in milliseconds.') })
    .refine((r) => r.min <= r.max, { message: 'latencyMs.min must not exceed latencyMs.max' }));

/** One injected-failure rule. Rules are tried in order; the first that fires wins. */
export const faultRuleSchema = once(() =>
  z.strictObject({
    node: z.string().min(1).optional().describe('A node id, or a glob over ids (`*` any run, `?` one character). Absent: every node.'),
    op: z.enum(MEMORY_OPS).optional().describe('The operation to fail. Absent: every operation.'),
    class: z.enum(FAULT_CLASSES).describe('The fault class reported.'),
    rate: z.number().min(0).max(1).default(1).describe('Probability that a matching call fails (seeded PRNG).'),
    times: z.number().int().min(1).optional().describe('Inject at most this many faults, then let calls through.'),
    retryAfterMs: z.number().int().min(0).optional().describe('The retry-after hint carried by the fault.'),
  }));

export type FaultRule = z.output<ReturnType<typeof faultRuleSchema>>;

/** `spec.config` of a Backend document with `type: memory`. */
export const memoryConfigSchema = once(() =>
  z.strictObject({
    latencyMs: z
      .union([z.number().min(0), latencyRange()])
      .default(0)
      .describe('Delay added to every call: a fixed number of milliseconds, or a uniform { min, max } range.'),
    faults: z.array(faultRuleSchema()).default([]).describe('Injected failures, tried in order.'),
    seed: z.number().int().default(1).describe('Seed of the PRNG behind fault rates and latency ranges, so runs repeat.'),
  }));

export type MemoryConfig = z.output<ReturnType<typeof memoryConfigSchema>>;
