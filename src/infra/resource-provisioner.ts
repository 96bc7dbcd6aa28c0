import { mapLimit, toFault } from '../runtime/index.ts';
import type { FieldDiff, Observation, OperationContext, ProvisionResult } from '../runtime/index.ts';
import type { BackendHealth, BackendNode, InfraBackend } from './backend.ts';
import type { InfraNodeType } from './spec.ts';

/**
 * The standalone provisioning SPI: the "make this thing exist" step for one
 * or a few node types, without the batching, watching and health checks of
 * a full `InfraBackend`. `resourceBackend()` turns one into a backend.
 */

/** What a provision call is asked to do. An update carries the diffs the observation found. */
export type ProvisionIntent =
  | { readonly verb: 'create' }
  | { readonly verb: 'update'; readonly diffs: readonly FieldDiff[] }
  | { readonly verb: 'delete' };

/**
 * Provisions single nodes. Blocking and idempotent like every SPI: each
 * method resolves with its final answer, takes the operation context
 * (AbortSignal, logger), and may throw a `FaultError` for a classified
 * failure (anything else thrown is an `unknown` fault). A create of something
 * that exists and a delete of something absent are successes.
 */
export interface ResourceProvisioner {
  /** The node types it can provision. */
  readonly kinds: readonly InfraNodeType[];
  /** Reads one node's actual state and compares it with the desired one. */
  observe(node: BackendNode, ctx: OperationContext): Promise<Observation>;
  /** Makes the node exist as desired (create, update: outputs and an optional memo, as `InfraBackend.create`) or not at all (delete). */
  provision(node: BackendNode, intent: ProvisionIntent, ctx: OperationContext): Promise<ProvisionResult>;
  /** Cheap readiness check; absent means always healthy. */
  health?(ctx: { signal: AbortSignal; log: OperationContext['log'] }): Promise<BackendHealth>;
  /** Releases whatever it holds. */
  close?(): Promise<void>;
}

/** How many nodes the adapter observes at once. */
export const RESOURCE_OBSERVE_CONCURRENCY = 4;

/**
 * An `InfraBackend` over a `ResourceProvisioner`: observes nodes with bounded
 * concurrency, one call each, and turns anything thrown into a `failed`
 * value, so the provisioner may throw `FaultError`s freely.
 */
export function resourceBackend(id: string, type: string, provisioner: ResourceProvisioner, options: { concurrency?: number } = {}): InfraBackend {
  const concurrency = Math.max(1, options.concurrency ?? RESOURCE_OBSERVE_CONCURRENCY);
  const provision = async (node: BackendNode, intent: ProvisionIntent, ctx: OperationContext): Promise<ProvisionResult> => {
    try {
      return await provisioner.provision(node, intent, ctx);
    } catch (err) {
      return { status: 'failed', fault: toFault(err) };
    }
  };
  const backend: InfraBackend = {
    id,
    type,
    async observe(nodes, ctx) {
      const observed = await mapLimit(nodes, concurrency, async (node): Promise<Observation> => {
        try {
          return await provisioner.observe(node, ctx);
        } catch (err) {
          return { status: 'failed', fault: toFault(err) };
        }
      });
      return new Map(nodes.map((node, i) => [node.id, observed[i]!]));
    },
    create: (node, ctx) => provision(node, { verb: 'create' }, ctx),
    update: (node, diffs, ctx) => provision(node, { verb: 'update', diffs }, ctx),
    delete: (node, ctx) => provision(node, { verb: 'delete' }, ctx),
    close: async () => {
      await provisioner.close?.();
    },
  };
  const health = provisioner.health?.bind(provisioner);
  return health === undefined ? backend : { ...backend, health };
}
