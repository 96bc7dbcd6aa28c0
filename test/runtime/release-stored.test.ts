import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { releaseAllStoredNodes, releaseStoredNode } from '../../src/runtime/controller.ts';
import { heldReason } from '../../src/runtime/node-record.ts';
import { SqliteStateStore } from '../../src/runtime/sqlite-state-store.ts';
import type { NodeRecord } from '../../src/runtime/state-store.ts';

// `retry` with no daemon running releases in the store. The record kept the time it was held as its
// updatedAt, so `status` showed "pending, released by operator" as of before the release; the daemon's
// release (operatorRetry) stamps the record with the time of the release.
let dir: string;
let store: SqliteStateStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ds-release-stored-'));
  store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: true });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

function held(id: string): NodeRecord {
  const fault = { class: 'permanent', message: 'no' } as const;
  return { id, goal: 'g', type: 'local.file', backendId: 'b', status: 'held', appliedDigest: null, outputs: null, managed: false, lastFault: fault, attempts: 3, retryAt: null, reason: 'held', snapshot: null, memo: null, deletionPolicy: 'Orphan', updatedAt: 1000 };
}

describe('a release in the store', () => {
  it('stamps the node with the time of the release, one node or all', () => {
    store.putNodes([held('a'), held('b')]);
    expect(releaseStoredNode(store, 'a', 5000)).toEqual({ status: 'released' });
    expect(store.getNode('a')).toMatchObject({ status: 'pending', reason: 'released by operator', attempts: 0, lastFault: null, updatedAt: 5000 });
    expect(releaseAllStoredNodes(store, 7000)).toEqual(['b']);
    expect(store.getNode('b')).toMatchObject({ status: 'pending', updatedAt: 7000 });
    expect(store.getNode('a')).toMatchObject({ updatedAt: 5000 });
  });
});

describe('a release in the store of a node whose create was cut short', () => {
  // `retry` of a node failed in its backoff after a create killed at its timeout ended the pending
  // create: the next read was not told the create was interrupted, and made a second resource.
  const cannotTell = (id: string): NodeRecord => ({ ...held(id), reason: heldReason(id, { status: 'indeterminate', reason: 'a create was interrupted' }) });
  const backingOff = (id: string): NodeRecord => ({ ...held(id), status: 'failed', lastFault: { class: 'transient', message: 'create command timed out' }, attempts: 1, retryAt: 9000, reason: 'create command timed out' });
  const pendingOf = (): string[] => store.pendingOperations().map((op) => `${op.node} ${op.op}`);

  it('keeps it for a failed node, and for one the fault policy holds; ends it for one held because its read could not tell', () => {
    store.putNodes([backingOff('failed'), held('permanent'), cannotTell('unsure')]);
    for (const id of ['failed', 'permanent', 'unsure']) store.beginOperation(id, 'create', null);
    expect(releaseStoredNode(store, 'failed', 5000)).toEqual({ status: 'released' });
    expect(releaseStoredNode(store, 'permanent', 5000)).toEqual({ status: 'released' });
    expect(pendingOf()).toEqual(['failed create', 'permanent create', 'unsure create']);
    expect(releaseStoredNode(store, 'unsure', 5000)).toEqual({ status: 'released' });
    expect(pendingOf()).toEqual(['failed create', 'permanent create']);
  });

  it('does the same with --all', () => {
    store.putNodes([backingOff('failed'), cannotTell('unsure')]);
    for (const id of ['failed', 'unsure']) store.beginOperation(id, 'create', null);
    expect(releaseAllStoredNodes(store, 5000).sort()).toEqual(['failed', 'unsure']);
    expect(pendingOf()).toEqual(['failed create']);
    expect(store.getNode('failed')).toMatchObject({ status: 'pending', retryAt: null });
  });
});
