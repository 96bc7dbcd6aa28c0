import type { DiagnosticBag, GoalInfo, NodeDeclaration, NodeGate, RawDocument, SourceLocation } from '../runtime/index.ts';
import type { InfraNodeSpec, InfraNodeType } from './spec.ts';

/** A field value set by a policy's environment-aware defaults (shown in plans as policy-set). */
export interface PolicyDefault {
  readonly field: string;
  readonly value: unknown;
  readonly policy: string;
}

/** A policy default that applies to one node, with where the policy sets it (for errors the value causes). */
export interface AppliedDefault extends PolicyDefault {
  readonly location: SourceLocation;
}

/** What a policy engine says of one node. */
export interface PolicyVerdict {
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
  /** Validates one Policy document that is not used (see `NodeSpecFactory.checkUnused`), for its diagnostics alone. */
  checkPolicy(doc: RawDocument, diag: DiagnosticBag): void;
  /** Called once all documents are read. */
  prepare?(goals: readonly GoalInfo[], diag: DiagnosticBag): void;
  /**
   * The environment-aware defaults for the fields of `decl`'s spec that its
   * goal leaves unset, one per field. Asked before the spec is validated:
   * the spec with them merged in is validated whole, by the type's schema
   * and the backend's checks, so that a default can fill a required field
   * and cannot get past a rule across fields that the same value written
   * in the goal would break.
   */
  defaultsFor(decl: NodeDeclaration, type: InfraNodeType): readonly AppliedDefault[];
  /**
   * Checks the rules for one node, whose `spec` has its defaults
   * (`defaultsFor`) in place; reports findings as diagnostics at the node. `runtimeFields` names the spec's top-level
   * fields that hold a `${nodes…}` reference where the type wants no text:
   * their value is known only at run time, so a check that reads one fails
   * closed.
   */
  evaluate(decl: NodeDeclaration, spec: InfraNodeSpec, diag: DiagnosticBag, options?: { readonly runtimeFields?: ReadonlySet<string> | undefined }): PolicyVerdict;
}
