import { z } from 'zod';
import {
  circuitBreakerSchema,
  classPolicySchema,
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_FAULT_POLICY_INPUT,
  decodeUtf8,
  defaultLoadLimits,
  DiagnosticBag,
  FAULT_CLASSES,
  parseCircuitBreakerConfig,
  parseFaultPolicy,
  parseGoalText,
  readAtMost,
  reportZodIssues,
} from '../runtime/index.ts';
import type { CircuitBreakerConfig, Diagnostic, FaultClass, FaultPolicy } from '../runtime/index.ts';

/**
 * The fault policy file (`run --fault-policy FILE`): per fault class, the
 * retry settings that differ from the defaults, and the circuit breaker's.
 *
 *   retry:
 *     transient: { baseMs: 500, maxMs: 60000 }
 *     permanent: { retryBudget: 5 }
 *   circuitBreaker: { failureThreshold: 10, coolDownMs: 60000 }
 */
export const faultPolicyFileSchema = z.strictObject({
  retry: z
    .strictObject(
      // The cross-field rule (maxMs at least baseMs) is checked after merging with the defaults.
      Object.fromEntries(FAULT_CLASSES.map((c) => [c, z.strictObject(classPolicySchema.shape).partial().optional()])) as unknown as Record<FaultClass, z.ZodOptional<z.ZodType>>,
    )
    .optional(),
  circuitBreaker: circuitBreakerSchema.partial().optional(),
});

/** Reads and validates a fault policy file; every problem is a diagnostic at its `file:line:col`. */
export async function loadFaultPolicyFile(
  path: string,
  shown: string,
): Promise<{ policy: FaultPolicy; circuitBreaker: CircuitBreakerConfig } | { diagnostics: Diagnostic[] }> {
  const bytes = await readAtMost(path, defaultLoadLimits.maxFileBytes);
  if (bytes === undefined) {
    return { diagnostics: [{ file: shown, line: 1, col: 1, severity: 'error', code: 'file-too-large', message: `fault policy file is larger than ${defaultLoadLimits.maxFileBytes} bytes` }] };
  }
  const text = decodeUtf8(bytes);
  if (typeof text !== 'string') return { diagnostics: [{ file: shown, ...text, severity: 'error', code: 'not-utf8', message: 'file is not valid UTF-8' }] };
  const parsed = parseGoalText(shown, text, undefined, { fileKind: 'fault policy file' });
  if (parsed.diagnostics.length > 0) return { diagnostics: parsed.diagnostics };
  const doc = parsed.documents[0];
  const diag = new DiagnosticBag();
  if (doc === undefined || parsed.documents.length > 1) {
    diag.error({ file: shown, line: 1, col: 1 }, 'invalid-value', 'a fault policy file holds exactly one YAML document');
    return { diagnostics: diag.items };
  }
  const checked = faultPolicyFileSchema.safeParse(doc.value);
  if (!checked.success) {
    reportZodIssues(checked.error.issues, { schema: faultPolicyFileSchema, input: doc.value, prefix: [], owner: 'a fault policy', locate: doc.locate, diag });
    return { diagnostics: diag.items };
  }
  const retry = (checked.data.retry ?? {}) as Partial<Record<FaultClass, object | undefined>>;
  const merged = Object.fromEntries(FAULT_CLASSES.map((c) => [c, { ...DEFAULT_FAULT_POLICY_INPUT[c], ...(retry[c] ?? {}) }]));
  // The cross-field rule, at the field the file writes (one of the two is, or they would be the valid defaults).
  for (const c of FAULT_CLASSES) {
    const given = (retry[c] ?? {}) as { baseMs?: number; maxMs?: number };
    const { baseMs, maxMs } = merged[c] as { baseMs: number; maxMs: number };
    if (maxMs >= baseMs) continue;
    const field = given.maxMs !== undefined ? 'maxMs' : 'baseMs';
    const shown = (name: 'baseMs' | 'maxMs', v: number): string => `${v}${given[name] === undefined ? ', the default' : ''}`;
    diag.error(doc.locate(['retry', c, field]), 'invalid-value', `retry.${c}.${field}: maxMs (${shown('maxMs', maxMs)}) must be at least baseMs (${shown('baseMs', baseMs)})`);
  }
  if (diag.items.length > 0) return { diagnostics: diag.items };
  try {
    return {
      policy: parseFaultPolicy(merged),
      circuitBreaker: parseCircuitBreakerConfig({ ...DEFAULT_CIRCUIT_BREAKER, ...(checked.data.circuitBreaker ?? {}) }),
    };
  } catch (err) {
    // Whatever else the runtime's own schema refuses (its maxMs-at-least-baseMs rule is met above, where the
    // file writes the field; this stays the one check that cannot be skipped).
    diag.error(doc.locate([]), 'invalid-value', err instanceof Error ? err.message : String(err));
    return { diagnostics: diag.items };
  }
}
