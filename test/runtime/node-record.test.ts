import { describe, expect, it } from 'vitest';
import { heldByPolicy, policyHoldReason, sameOutputs } from '../../src/runtime/node-record.ts';
import type { NodeRecord } from '../../src/runtime/state-store.ts';

const record = (status: NodeRecord['status'], reason: string | null): NodeRecord => ({
  id: 'a',
  goal: 'g',
  type: 'local.file',
  backendId: 'local',
  status,
  appliedDigest: null,
  outputs: null,
  managed: true,
  lastFault: null,
  attempts: 0,
  retryAt: null,
  reason,
  snapshot: null,
  memo: null,
  deletionPolicy: 'Delete',
  updatedAt: 0,
});

describe('a node held by a policy gate', () => {
  it('is told by its reason, as written now and as records written before 2026-11-24 have it', () => {
    expect(policyHoldReason('naming:name (high, org)')).toBe('held by policy: naming:name (high, org)');
    expect(heldByPolicy(record('held', policyHoldReason('naming:name (high, org)')))).toBe(true);
    expect(heldByPolicy(record('held', 'policy: held by policy: naming:name (high, org)'))).toBe(true);
  });

  it('is not a node held by the fault policy, nor one no longer held', () => {
    expect(heldByPolicy(record('held', 'auth: password authentication failed (budget spent)'))).toBe(false);
    expect(heldByPolicy(record('ready', policyHoldReason('naming:name (high, org)')))).toBe(false);
    expect(heldByPolicy(record('held', null))).toBe(false);
  });
});

// A list or map output is read anew at every observation: a new object equal to the one recorded. Compared
// by identity, the node never looked steady, and its record was written again on every pass.
describe('sameOutputs', () => {
  it('compares lists and maps by value, key order aside', () => {
    expect(sameOutputs({ tags: ['a', 'b'], ep: { host: 'h', port: 5 } }, { ep: { port: 5, host: 'h' }, tags: ['a', 'b'] })).toBe(true);
    expect(sameOutputs({ tags: ['a', 'b'] }, { tags: ['b', 'a'] })).toBe(false);
    expect(sameOutputs({ ep: { host: 'h' } }, { ep: { host: 'h', port: 5 } })).toBe(false);
    expect(sameOutputs({ tags: [] }, { other: [] })).toBe(false);
    expect(sameOutputs({ n: 1, s: 'x' }, { n: 1, s: 'x' })).toBe(true);
    expect(sameOutputs({ n: 1 }, { n: '1' })).toBe(false);
  });
});
