import { mapLimit, toFault } from '../runtime/index.ts';
import type { FieldDiff, Observation, OperationContext, ProvisionResult } from '../runtime/index.ts';
import type { BackendHealth, BackendNode, InfraBackend } from './backend.ts';
import { SecretMask } from './secret-mask.ts';
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

/** The operation context of one `ResourceProvisioner` call. */
export interface ResourceContext extends OperationContext {
  /**
   * Values this call has handed a program that may quote them back (a secret
   * resolved for this run): masked, with the provisioner's `mask`, in what the
   * call returns or throws, outputs included. They are forgotten when the call ends.
   */
  readonly addSecrets: (values: Iterable<string>) => void;
  /** The call's mask so far (the provisioner's, with what it added): for what the provisioner logs itself. */
  readonly mask: () => SecretMask;
}

/**
 * Provisions single nodes. Blocking and idempotent like every SPI: each
 * method resolves with its final answer, takes the operation context
 * (AbortSignal, logger), and may throw a `FaultError` for a classified
 * failure (anything else thrown is an `unknown` fault). A create of something
 * that exists and a delete of something absent are successes. What a call
 * returns or throws is masked by the adapter (see `mask`), so a provisioner
 * only says what is secret.
 */
export interface ResourceProvisioner {
  /** The node types it can provision. */
  readonly kinds: readonly InfraNodeType[];
  /**
   * The values it hands every program it runs that may be quoted back (an
   * allowlisted token): never in an observation's reason, fault or drift, nor
   * in a provision fault. In outputs (an observation's, a provision's), which
   * are stored and handed to dependents, its secrets are masked, and the values
   * that only may be secrets are left (see `SecretMask.outputs`). Absent:
   * nothing to mask beyond what a call adds.
   */
  readonly mask?: SecretMask | undefined;
  /** Reads one node's actual state and compares it with the desired one. */
  observe(node: BackendNode, ctx: ResourceContext): Promise<Observation>;
  /** Makes the node exist as desired (create, update: outputs and an optional memo, as `InfraBackend.create`) or not at all (delete). */
  provision(node: BackendNode, intent: ProvisionIntent, ctx: ResourceContext): Promise<ProvisionResult>;
  /** Optional: what the node's changes rewrite that others' may too (`InfraBackend.serialKey`). */
  serialKey?(node: BackendNode): Promise<string | undefined>;
  /** Cheap readiness check; absent means always healthy. */
  health?(ctx: { signal: AbortSignal; log: OperationContext['log'] }): Promise<BackendHealth>;
  /** Releases whatever it holds. */
  close?(): Promise<void>;
}

/** How many nodes the adapter observes at once. */
export const RESOURCE_OBSERVE_CONCURRENCY = 4;

/**
 * An `InfraBackend` over a `ResourceProvisioner`: observes nodes with bounded
 * concurrency, one call each, turns anything thrown into a `failed` value,
 * so the provisioner may throw `FaultError`s freely, and masks the secrets
 * (its `mask` and what the call added) in what each call answers: faults,
 * reasons, drift and outputs. Here, once, for every backend built on it
 * (exec, ansible, script), whose outputs are what a program printed.
 */
export function resourceBackend(id: string, type: string, provisioner: ResourceProvisioner, options: { concurrency?: number } = {}): InfraBackend {
  const concurrency = Math.max(1, options.concurrency ?? RESOURCE_OBSERVE_CONCURRENCY);
  const base = provisioner.mask ?? new SecretMask([]);
  const provision = async (node: BackendNode, intent: ProvisionIntent, ctx: OperationContext): Promise<ProvisionResult> => {
    const { call, mask } = callContext(ctx, base);
    let result: ProvisionResult;
    try {
      result = await provisioner.provision(node, intent, call);
    } catch (err) {
      result = { status: 'failed', fault: toFault(err) };
    }
    if (result.status === 'failed') return { ...result, fault: mask().fault(result.fault) };
    // What the program printed is stored, shown and referenced: without the secrets it was handed.
    return { ...result, outputs: mask().outputs(result.outputs) };
  };
  const backend: InfraBackend = {
    id,
    type,
    async observe(nodes, ctx) {
      const observed = await mapLimit(nodes, concurrency, async (node): Promise<Observation> => {
        const { call, mask } = callContext(ctx, base);
        let obs: Observation;
        try {
          obs = await provisioner.observe(node, call);
        } catch (err) {
          obs = { status: 'failed', fault: toFault(err) };
        }
        return mask().observation(obs);
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
  const serialKey = provisioner.serialKey?.bind(provisioner);
  return { ...backend, ...(health === undefined ? {} : { health }), ...(serialKey === undefined ? {} : { serialKey }) };
}

/** One call's context, and its mask: the provisioner's with the values the call added (read once it has answered). */
function callContext(ctx: OperationContext, base: SecretMask): { call: ResourceContext; mask: () => SecretMask } {
  const added: string[] = [];
  const mask = (): SecretMask => (added.length === 0 ? base : base.with(added));
  return {
    call: {
      ...ctx,
      addSecrets: (values) => {
        added.push(...values);
      },
      mask,
    },
    mask,
  };
}
