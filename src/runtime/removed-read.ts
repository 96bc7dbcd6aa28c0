import { stableStringify } from './digest.ts';
import { forEachLimit } from './limit.ts';
import { removedOutputsOf, storedRefs } from './node-record.ts';
import type { DesiredNode, NodeId, NodeSpec } from './node-spec.ts';
import type { NodeProvisioner, Observation, OperationContext, Outputs } from './provisioner.ts';
import { observationOf } from './provisioner.ts';
import type { NodeRecord } from './state-store.ts';

/**
 * The read of nodes removed from the goals before their delete, shared by apply, plan and the daemon.
 * As Terraform refreshes a resource before it destroys it: one found gone already is forgotten and
 * sent no delete, which the backend may not take for done (an exec `delete` command that fails on
 * what is not there), and a delete cut short after it did its work is never sent again.
 */

/** The stable message of the log line of a removed node whose read before its delete found nothing (apply and the daemon). */
export const GONE_ALREADY = 'node forgotten: removed from the goals and found gone already, no delete sent';

/** A removed record and the node its stored spec stands for (`removedNode`), to read before its delete. */
export interface RemovedItem<S extends NodeSpec> {
  readonly r: NodeRecord;
  readonly node: DesiredNode<S>;
}

/**
 * Reads `items` as their deletes would send them: each node's references read what its record keeps
 * (`removedOutputsOf`), with `beforeDelete` set. A call has one `outputsOf`, so the nodes whose
 * references read the same kept values share one observe call (most often all of them: none kept),
 * at most `concurrency` calls in flight. One observation per item.
 */
export async function readRemoved<S extends NodeSpec>(
  provisioner: NodeProvisioner<S>,
  items: readonly RemovedItem<S>[],
  ctx: OperationContext,
  concurrency: number,
): Promise<Map<NodeId, Observation>> {
  const groups = new Map<string, RemovedItem<S>[]>();
  for (const item of items) {
    const key = stableStringify(storedRefs(item.r) ?? {});
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [item]);
    else group.push(item);
  }
  const found = new Map<NodeId, Observation>();
  await forEachLimit([...groups.values()], concurrency, async (group) => {
    const own = new Map(group.map(({ r }) => [r.id, r]));
    const kept = removedOutputsOf(group[0]!.r, ctx.outputsOf);
    // Each node's own outputs as recorded, and what the group's references read (`removedOutputsOf`).
    const outputsOf = (id: NodeId): Outputs | undefined => {
      const r = own.get(id);
      return r === undefined ? kept(id) : (r.outputs ?? undefined);
    };
    const observed = await provisioner.observe(
      group.map((i) => i.node),
      { ...ctx, outputsOf, beforeDelete: true },
    );
    for (const { r } of group) found.set(r.id, observationOf(observed, r.id));
  });
  return found;
}
