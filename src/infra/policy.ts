import type { DiagnosticBag, GoalInfo, NodeDeclaration, NodeGate, RawDocument } from '../runtime/index.ts';
import type { InfraNodeSpec } from './spec.ts';

/** A field value set by a policy's environment-aware defaults (shown in plans as policy-set). */
export interface PolicyDefault {
  readonly field: string;
  readonly value: unknown;
  readonly policy: string;
}

/** What a policy engine says of one node. */
export interface PolicyVerdict {
  /** The spec with policy defaults applied (where the goal did not set the field). */
  readonly spec: InfraNodeSpec;
  readonly defaults: readonly PolicyDefault[];
  /** Set when a finding at or above the blocking severity holds the node. */
  readonly gate?: NodeGate | undefined;
}

/**
 * Constraints enforced before anything is provisioned. The goal factory feeds
 * it every Policy document, then asks it about every node.
 */
export interface PolicyEngine {
  /** Validates and keeps one Policy document (CEL compiled here, once). */
  acceptPolicy(doc: RawDocument, diag: DiagnosticBag): void;
  /** Called once all documents are read. */
  prepare?(goals: readonly GoalInfo[], diag: DiagnosticBag): void;
  /**
   * Applies defaults and checks the rules for one node; reports findings as
   * diagnostics at the node. `runtimeFields` names the spec's top-level
   * fields that hold a `${nodes…}` reference where the type wants no text:
   * their value is known only at run time, so a check that reads one fails
   * closed.
   */
  evaluate(decl: NodeDeclaration, spec: InfraNodeSpec, diag: DiagnosticBag, options?: { readonly runtimeFields?: ReadonlySet<string> | undefined }): PolicyVerdict;
}
