import type { NodeId } from '../../runtime/index.ts';

/** Adds `id` to the list of `key` in `lists` (once). */
export function addId<K>(lists: Map<K, NodeId[]>, key: K, id: NodeId): void {
  const ids = lists.get(key);
  if (ids === undefined) lists.set(key, [id]);
  else if (!ids.includes(id)) ids.push(id);
}

/**
 * Takes `id` out of the list of `key` in `lists`, the key with its last id; answers the ids left. The
 * list is replaced, never changed: a loop going through it meanwhile goes on safely.
 */
export function removeId<K>(lists: Map<K, NodeId[]>, key: K, id: NodeId): NodeId[] {
  const left = lists.get(key)?.filter((x) => x !== id) ?? [];
  if (left.length > 0) lists.set(key, left);
  else lists.delete(key);
  return left;
}
