import type { Logger } from 'pino';
import type { z } from 'zod';
import type { FieldDiff, NodeId, Observation, OperationContext, Outputs, ProvisionResult } from '../runtime/index.ts';
import type { InfraNode } from './desired.ts';
import type { InfraNodeType } from './spec.ts';

/** A node as a backend sees it: references to other nodes' outputs already resolved. */
export type BackendNode = InfraNode;

/** The health of a backend instance, for `desiredstate backends` and /readyz. */
export type BackendHealth = { readonly status: 'healthy' } | { readonly status: 'unhealthy'; readonly message: string };

/** Called by a backend that noticed a change to what it manages (for example a file event). */
export type ChangeListener = (nodeIds: readonly NodeId[]) => void;

/**
 * One configured backend instance (HOW). Every method is blocking and
 * idempotent, takes the operation context (AbortSignal, logger), and may
 * throw a `FaultError` to report a classified failure; anything else thrown
 * is an `unknown` fault. "Already exists" on create is success.
 */
export interface InfraBackend {
  /** The instance id (the Backend document's metadata.name). */
  readonly id: string;
  /** The implementation (`local`, `memory`, `postgres` …). */
  readonly type: string;
  /** Observes many nodes at once; one entry per node. Batching backends make one query per kind. */
  observe(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>>;
  /** Creates the resource; resolves with its outputs. */
  create(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult>;
  /** Corrects the fields in `diffs` (and anything else that differs). */
  update(node: BackendNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult>;
  /** Deletes the resource; absent is success. */
  delete(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult>;
  /** Cheap reachability check. */
  health?(ctx: { signal: AbortSignal; log: Logger }): Promise<BackendHealth>;
  /** Starts watching the given nodes' resources; returns a function that stops watching. */
  watch?(nodes: readonly BackendNode[], onChange: ChangeListener, log: Logger): () => void;
  /** Releases connections and watchers. */
  close(): Promise<void>;
}

/** What a backend implementation gets at construction. */
export interface BackendContext {
  readonly id: string;
  /** Directory relative paths resolve against (the working directory). */
  readonly cwd: string;
  readonly log: Logger;
  /** The state directory, for backends that keep files of their own. */
  readonly stateDir: string;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * A backend implementation, registered by type. Its static half (`kinds`,
 * `configSchema`) is enough to validate goals without connecting.
 */
export interface BackendFactory<C = unknown> {
  readonly type: string;
  /** The node types this implementation can provision. */
  readonly kinds: readonly InfraNodeType[];
  /** Validates the Backend document's `spec.config`. */
  readonly configSchema: z.ZodType<C>;
  /** Builds an instance. Must not do I/O that can fail slowly; connect lazily. */
  create(config: C, ctx: BackendContext): InfraBackend;
  /** Short description, for `desiredstate schema` and `backends`. */
  readonly description: string;
}

export type { Outputs };
