import { initialTransition, transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/runtime/errors.ts';
import type { NodeEventType, NodeMachineState } from '../../src/runtime/node-machine.ts';
import {
  NODE_EVENT_TYPES,
  NODE_MACHINE_STATES,
  nodeTransitionTable,
  initialNodeState,
  nextNodeState,
  nextStatus,
  nodeMachine,
  nodeSnapshotFor,
  toNodeSnapshot,
  xstateNextNodeState,
} from '../../src/runtime/node-machine.ts';
import { NODE_STATUSES } from '../../src/runtime/state-store.ts';

const table = nodeTransitionTable();

describe('node machine', () => {
  it('starts pending', () => {
    expect(initialNodeState().status).toBe('pending');
    expect(initialNodeState().snapshot).toEqual(nodeMachine.getPersistedSnapshot(initialTransition(nodeMachine)[0]));
  });

  it('has only states the store knows', () => {
    for (const s of NODE_MACHINE_STATES) expect(NODE_STATUSES).toContain(s);
  });

  it.each<{ name: string; from: NodeMachineState; event: NodeEventType; to: NodeMachineState }>([
    { name: 'a new node is observed', from: 'pending', event: 'OBSERVE', to: 'observing' },
    { name: 'absent: a create starts', from: 'observing', event: 'OBSERVED_ABSENT', to: 'creating' },
    { name: 'up to date: ready', from: 'observing', event: 'OBSERVED_UP_TO_DATE', to: 'ready' },
    { name: 'drift observed', from: 'observing', event: 'OBSERVED_DRIFTED', to: 'drifted' },
    { name: 'indeterminate (crash mid-create): refuse to guess', from: 'observing', event: 'OBSERVED_INDETERMINATE', to: 'held' },
    { name: 'observe failed', from: 'observing', event: 'OBSERVE_FAILED', to: 'failed' },
    { name: 'create succeeded', from: 'creating', event: 'PROVISION_DONE', to: 'ready' },
    { name: 'create failed', from: 'creating', event: 'PROVISION_FAILED', to: 'failed' },
    { name: 'self-heal starts an update', from: 'drifted', event: 'UPDATE', to: 'updating' },
    { name: 'update succeeded', from: 'updating', event: 'PROVISION_DONE', to: 'ready' },
    { name: 'update failed', from: 'updating', event: 'PROVISION_FAILED', to: 'failed' },
    { name: 'delete succeeded', from: 'deleting', event: 'PROVISION_DONE', to: 'deleted' },
    { name: 'delete failed', from: 'deleting', event: 'PROVISION_FAILED', to: 'failed' },
    { name: 'ready nodes are re-observed each interval', from: 'ready', event: 'OBSERVE', to: 'observing' },
    { name: 'observe-only drift is re-observed', from: 'drifted', event: 'OBSERVE', to: 'observing' },
    { name: 'a dependency not ready blocks', from: 'pending', event: 'DEPENDENCY_BLOCKED', to: 'blocked' },
    { name: 'a failed node can be blocked', from: 'failed', event: 'DEPENDENCY_BLOCKED', to: 'blocked' },
    { name: 'dependencies ready: back to pending', from: 'blocked', event: 'DEPENDENCIES_READY', to: 'pending' },
    { name: 'backoff expired', from: 'failed', event: 'RETRY_DUE', to: 'pending' },
    { name: 'the policy holds a failed node', from: 'failed', event: 'HOLD', to: 'held' },
    { name: 'the policy holds on a failed create directly', from: 'creating', event: 'HOLD', to: 'held' },
    { name: 'operator retry releases a held node', from: 'held', event: 'OPERATOR_RETRY', to: 'pending' },
    { name: 'a goal change releases a held node', from: 'held', event: 'GOAL_CHANGED', to: 'pending' },
    { name: 'a goal change restarts a ready node', from: 'ready', event: 'GOAL_CHANGED', to: 'pending' },
    { name: 'pruned with policy Delete', from: 'ready', event: 'DELETE', to: 'deleting' },
    { name: 'pruned with policy Orphan', from: 'drifted', event: 'ORPHAN', to: 'orphaned' },
    { name: 'a deleted node re-added to the goals', from: 'deleted', event: 'GOAL_CHANGED', to: 'pending' },
    // Ignored: the node stays where it is.
    { name: 'a goal change does not interrupt a create in flight', from: 'creating', event: 'GOAL_CHANGED', to: 'creating' },
    { name: 'retry-due is meaningless for a ready node', from: 'ready', event: 'RETRY_DUE', to: 'ready' },
    { name: 'operator retry does not un-hold by observing', from: 'held', event: 'OBSERVE', to: 'held' },
    { name: 'a held node is not blocked', from: 'held', event: 'DEPENDENCY_BLOCKED', to: 'held' },
    { name: 'no delete while a create is in flight', from: 'creating', event: 'DELETE', to: 'creating' },
  ])('$from --$event--> $to: $name', ({ from, event, to }) => {
    const r = nextNodeState(nodeSnapshotFor(from), { type: event });
    expect(r.status).toBe(to);
    expect(r.snapshot.value).toBe(to);
    expect(r.transition).toBe(from === to ? 'ignored' : 'taken');
  });

  it('the table agrees with xstate on every (state, event) pair, snapshots included', () => {
    for (const s of NODE_MACHINE_STATES) {
      const restored = nodeMachine.resolveState({ value: s, context: {} as never });
      for (const e of NODE_EVENT_TYPES) {
        const [next] = transition(nodeMachine, restored, { type: e });
        expect(table[s][e]).toBe(next.value);
        expect(xstateNextNodeState(s, e)).toBe(next.value);
        expect(nextNodeState(nodeSnapshotFor(s), { type: e }).snapshot).toEqual(nodeMachine.getPersistedSnapshot(next));
      }
    }
  });

  it('has no self-loops, so "same state" means "ignored"', () => {
    for (const s of NODE_MACHINE_STATES) {
      for (const e of NODE_EVENT_TYPES) {
        const accepted = nodeMachine.resolveState({ value: s, context: {} as never }).can({ type: e });
        expect(table[s][e] !== s).toBe(accepted);
      }
    }
  });

  it('every state is reachable from pending', () => {
    const seen = new Set<NodeMachineState>(['pending']);
    const todo: NodeMachineState[] = ['pending'];
    for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
      for (const e of NODE_EVENT_TYPES) {
        const n = table[s][e];
        if (seen.has(n)) continue;
        seen.add(n);
        todo.push(n);
      }
    }
    expect([...seen].sort()).toEqual([...NODE_MACHINE_STATES].sort());
  });

  it('snapshots survive JSON and are validated when read back', () => {
    const stored: unknown = JSON.parse(JSON.stringify(nextNodeState(initialNodeState().snapshot, { type: 'OBSERVE' }).snapshot));
    const snap = toNodeSnapshot(stored);
    expect(snap.value).toBe('observing');
    expect(nextNodeState(snap, { type: 'OBSERVED_UP_TO_DATE' }).status).toBe('ready');
  });

  it.each([
    { name: 'null', stored: null },
    { name: 'a state this program does not know', stored: { status: 'active', value: 'exploded', context: {} } },
    { name: 'a finished actor', stored: { status: 'done', value: 'ready' } },
    { name: 'a nested value', stored: { status: 'active', value: { a: 'b' } } },
  ])('refuses a stored snapshot that is $name', ({ stored }) => {
    expect(() => toNodeSnapshot(stored)).toThrow(expect.objectContaining({ code: ErrorCodes.InvalidNodeSnapshot }));
  });

  it('answers from a table: one shared, frozen snapshot per state, the same object for every node and every call', () => {
    // What lets 100k nodes go without 100k live actors or 100k snapshot objects (bench/reconcile/memory.ts measures the pass).
    for (const s of NODE_MACHINE_STATES) {
      for (const e of NODE_EVENT_TYPES) {
        const a = nextNodeState(nodeSnapshotFor(s), { type: e });
        const b = nextNodeState(nodeSnapshotFor(s), { type: e });
        expect(b.snapshot).toBe(a.snapshot);
        expect(a.snapshot).toBe(nodeSnapshotFor(a.status));
        expect(Object.isFrozen(a.snapshot)).toBe(true);
      }
    }
  });

  it('nextStatus: the transition from a stored status; a status the machine does not know is refused with a code', () => {
    expect(nextStatus('held', 'OPERATOR_RETRY')).toMatchObject({ status: 'pending', transition: 'taken' });
    expect(nextStatus('ready', 'OPERATOR_RETRY')).toMatchObject({ status: 'ready', transition: 'ignored' });
    for (const s of NODE_MACHINE_STATES) for (const e of NODE_EVENT_TYPES) expect(nextStatus(s, e).status).toBe(table[s][e]);
    expect(() => nextStatus('exploded' as NodeMachineState, 'OBSERVE')).toThrow(expect.objectContaining({ code: ErrorCodes.InvalidNodeSnapshot }));
  });
});
