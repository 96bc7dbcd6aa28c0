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
import type { CircuitBreakerConfig, Diagnostic, FaultClass, FaultPolicy, FaultPolicyInput, SourceDocument } from '../runtime/index.ts';

/**
 * The fault policy file (`run --fault-policy FILE`): per fault class, the
 * retry settings that differ from the defaults, and the circuit breaker's.
 *
 *   retry:
 *     transient: { baseMs: 500, maxMs: 60000, retryBudget: 20 }   # held after 20 failed attempts
 *     permanent: { retryBudget: 5 }
 *     auth: { holdAfterBudget: false }                            # never held: retried for ever
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

/** What the file writes for one fault class: any of its settings. */
type ClassSettings = Partial<FaultPolicyInput[FaultClass]>;

/**
 * A class's settings over its defaults. A spent budget does nothing but hold the node, so a
 * `retryBudget` written holds after it unless the file says `holdAfterBudget` itself: `transient:
 * { retryBudget: 2 }` kept retrying for ever, as the default transient policy does not hold.
 */
function withDefaults(c: FaultClass, given: ClassSettings): Required<ClassSettings> {
  const hold = given.retryBudget !== undefined && given.holdAfterBudget === undefined ? { holdAfterBudget: true } : {};
  return { ...DEFAULT_FAULT_POLICY_INPUT[c], ...given, ...hold };
}

/** Settings written that would change nothing: a budget never acted on, or a hold after a budget never spent. */
function checkBudget(c: FaultClass, given: ClassSettings, merged: Required<ClassSettings>, locate: SourceDocument['locate'], diag: DiagnosticBag): void {
  const unlimited = merged.retryBudget === null || merged.retryBudget === Number.POSITIVE_INFINITY;
  if (given.holdAfterBudget === false && given.retryBudget !== undefined && !unlimited) {
    diag.error(
      locate(['retry', c, 'retryBudget']),
      'invalid-value',
      `retry.${c}.retryBudget: ${merged.retryBudget} has no effect with holdAfterBudget: false (a spent budget only holds the node); drop holdAfterBudget: false to hold the node after ${merged.retryBudget} failed attempts, or write retryBudget: null to retry for ever`,
    );
  } else if (given.holdAfterBudget === true && unlimited) {
    const budget = given.retryBudget === undefined ? 'unlimited (the default)' : 'unlimited';
    diag.error(locate(['retry', c, 'holdAfterBudget']), 'invalid-value', `retry.${c}.holdAfterBudget: true has no effect: the retryBudget is ${budget}; give a retryBudget, the failed attempts after which the node is held`);
  }
}

/** Reads and validates a fault policy file; every problem is a diagnostic at its `file:line:col`. */
export async function loadFaultPolicyFile(
  path: string,
  shown: string,
): Promise<{ policy: FaultPolicy; circuitBreaker: CircuitBreakerConfig } | { diagnostics: Diagnostic[] }> {
  const bytes = await readAtMost(path, defaultLoadLimits.maxFileBytes, { pipes: true });
  if (bytes !== undefined && !Buffer.isBuffer(bytes)) {
    return { diagnostics: [{ file: shown, line: 1, col: 1, severity: 'error', code: 'not-a-file', message: `fault policy file is ${bytes.special}, not a regular file` }] };
  }
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
  const retry = (checked.data.retry ?? {}) as Partial<Record<FaultClass, ClassSettings | undefined>>;
  const merged = Object.fromEntries(FAULT_CLASSES.map((c) => [c, withDefaults(c, retry[c] ?? {})]));
  for (const c of FAULT_CLASSES) {
    const given = retry[c] ?? {};
    checkBudget(c, given, merged[c]!, doc.locate, diag);
    // The cross-field rule, at the field the file writes (one of the two is, or they would be the valid defaults).
    const { baseMs, maxMs } = merged[c]!;
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
