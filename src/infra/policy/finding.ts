import type { NodeId, SourceLocation } from '../../runtime/index.ts';
import type { Framework, Level } from './schema.ts';

/** Where a finding comes from: a naming pattern, a required label, a CEL rule, or a rule that could not be evaluated. */
export type FindingKind = 'naming' | 'required-label' | 'rule' | 'rule-error';

/** One rule broken by one node. */
export interface Finding {
  /** The Policy document (metadata.name) the rule belongs to, or that included its pack. */
  readonly policy: string;
  /** The rule id: a CEL rule's `id`, `naming:<field>`, `required-label:<key>`, or `baseline.<name>`. */
  readonly rule: string;
  readonly kind: FindingKind;
  /** The rule's level in the node's environment. */
  readonly severity: Level;
  /** At or above the policy's `blockAt`: the node is held. */
  readonly blocking: boolean;
  /** What is wrong with this node, in one sentence. */
  readonly message: string;
  /** The rule's own description (what it requires). */
  readonly description: string;
  readonly frameworks: readonly Framework[];
  readonly node: NodeId;
  readonly type: string;
  readonly goal: string;
  readonly environment: string;
  /** The node, or the offending field inside it. */
  readonly location: SourceLocation;
}

/** `[high] naming:name: … (policy acme; SOC2, PCI-DSS)`: the diagnostic text for a finding. */
export function findingText(f: Finding): string {
  const scope = f.frameworks.length === 0 ? `policy ${f.policy}` : `policy ${f.policy}; ${f.frameworks.join(', ')}`;
  return `[${f.severity}] ${f.rule}: ${f.message} (${scope})`;
}
