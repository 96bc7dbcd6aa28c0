import { fault } from '../../runtime/index.ts';
import type { Fault } from '../../runtime/index.ts';
import type { FaultRule, MemoryOp } from './config.ts';


/** Matches a node id against an exact id or a glob (`*`, `?`). */
export function nodeMatcher(pattern: string | undefined): (id: string) => boolean {
  if (pattern === undefined) return () => true;
  if (!/[*?]/.test(pattern)) return (id) => id === pattern;
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  const re = new RegExp(`^${source}$`);
  return (id) => re.test(id);
}

interface CompiledRule {
  readonly rule: FaultRule;
  readonly matches: (id: string) => boolean;
  /** Faults injected so far by this rule (for `times`). */
  fired: number;
}

/**
 * Decides, call by call, whether to inject a fault. Stateful: `times`
 * counts per rule, and the PRNG advances only when a rule with rate < 1
 * matches, so a run with the same seed and calls repeats exactly.
 */
export class FaultInjector {
  private readonly rules: readonly CompiledRule[];
  private readonly random: () => number;

  constructor(rules: readonly FaultRule[], random: () => number) {
    this.rules = rules.map((rule) => ({ rule, matches: nodeMatcher(rule.node), fired: 0 }));
    this.random = random;
  }

  /** True when some rule could fire for `op` (lets the observe path skip per-node checks). */
  targets(op: MemoryOp): boolean {
    return this.rules.some((r) => r.rule.op === undefined || r.rule.op === op);
  }

  /** The fault to inject for this call, if any. */
  next(op: MemoryOp, nodeId: string): Fault | undefined {
    for (const r of this.rules) {
      if (r.rule.op !== undefined && r.rule.op !== op) continue;
      if (!r.matches(nodeId)) continue;
      if (r.rule.times !== undefined && r.fired >= r.rule.times) continue;
      if (r.rule.rate < 1 && this.random() >= r.rule.rate) continue;
      r.fired++;
      return fault(r.rule.class, `injected ${r.rule.class} fault on ${op}`, {
        code: 'injected',
        ...(r.rule.retryAfterMs === undefined ? {} : { retryAfterMs: r.rule.retryAfterMs }),
      });
    }
    return undefined;
  }
}
