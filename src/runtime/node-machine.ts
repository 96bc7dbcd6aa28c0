import { initialTransition, setup, transition } from 'xstate';
import { DesiredStateError, ErrorCodes } from './errors.ts';
import type { NodeStatus } from './state-store.ts';

/**
 * A node's lifecycle, defined as an xstate v5 machine and used as a pure
 * transition function over persisted snapshots: 100k nodes need no live
 * actors. The machine has no context and no actions, so a snapshot is fully
 * described by its state: the store keeps it as the node record's `status`,
 * and a restart resumes each node from there. At module load we enumerate
 * every (state, event) pair through xstate into a table that the hot path
 * reads. xstate stays the definition (and the tests check that the table and
 * xstate agree).
 *
 * Events are facts the reconciler reports or decisions it took; the machine
 * says where the node stands next. An event a state does not accept leaves
 * the node where it is (`transition: 'ignored'`): level-triggered, a stale
 * event is not an error.
 */

/** Every event type, without payload (the machine reads only the type). */
export const NODE_EVENT_TYPES = [
  /** The reconciler starts observing the node. */
  'OBSERVE',
  /** Observed: does not exist (a create is recorded as pending next). */
  'OBSERVED_ABSENT',
  'OBSERVED_UP_TO_DATE',
  'OBSERVED_DRIFTED',
  /** The backend cannot tell whether the resource exists (crash mid-create): refuse to guess, hold. */
  'OBSERVED_INDETERMINATE',
  'OBSERVE_FAILED',
  /** The reconciler starts correcting drift (self-heal). */
  'UPDATE',
  /** The reconciler starts deprovisioning a node removed from the goals (prune, policy Delete). */
  'DELETE',
  /** A node removed from the goals is left in place (policy Orphan). */
  'ORPHAN',
  'PROVISION_DONE',
  'PROVISION_FAILED',
  'DEPENDENCY_BLOCKED',
  'DEPENDENCIES_READY',
  /** A failed node's backoff expired. */
  'RETRY_DUE',
  /** `desiredstate retry NODE`. */
  'OPERATOR_RETRY',
  /** The node's desired spec changed (or it re-appeared in the goals). */
  'GOAL_CHANGED',
  /** The fault policy decided to hold the node for an operator. */
  'HOLD',
  /** A node held waiting for what may come on its own (a script's trust) is looked at again. */
  'RECHECK',
] as const;
export type NodeEventType = (typeof NODE_EVENT_TYPES)[number];
export type NodeEvent = { readonly type: NodeEventType };

/** The machine's states: a subset of `NodeStatus` (in fact all of them). */
export const NODE_MACHINE_STATES = [
  'pending',
  'observing',
  'creating',
  'updating',
  'deleting',
  'ready',
  'drifted',
  'failed',
  'blocked',
  'held',
  'orphaned',
  'deleted',
] as const satisfies readonly NodeStatus[];
export type NodeMachineState = (typeof NODE_MACHINE_STATES)[number];

// Shared transitions of the "at rest" states (nothing in flight).
const leave = { DELETE: 'deleting', ORPHAN: 'orphaned' } as const;
const restart = { GOAL_CHANGED: 'pending' } as const;
const block = { DEPENDENCY_BLOCKED: 'blocked' } as const;

/** The lifecycle definition. */
export const nodeMachine = setup({
  types: {} as { events: NodeEvent },
}).createMachine({
  id: 'node',
  initial: 'pending',
  states: {
    pending: { on: { OBSERVE: 'observing', ...block, ...leave, HOLD: 'held' } },
    observing: {
      on: {
        OBSERVED_ABSENT: 'creating',
        OBSERVED_UP_TO_DATE: 'ready',
        OBSERVED_DRIFTED: 'drifted',
        OBSERVED_INDETERMINATE: 'held',
        OBSERVE_FAILED: 'failed',
        HOLD: 'held',
      },
    },
    creating: { on: { PROVISION_DONE: 'ready', PROVISION_FAILED: 'failed', HOLD: 'held' } },
    updating: { on: { PROVISION_DONE: 'ready', PROVISION_FAILED: 'failed', HOLD: 'held' } },
    deleting: { on: { PROVISION_DONE: 'deleted', PROVISION_FAILED: 'failed', HOLD: 'held' } },
    ready: { on: { OBSERVE: 'observing', ...block, ...restart, ...leave } },
    drifted: { on: { OBSERVE: 'observing', UPDATE: 'updating', ...block, ...restart, ...leave } },
    failed: {
      on: { RETRY_DUE: 'pending', OPERATOR_RETRY: 'pending', HOLD: 'held', ...block, ...restart, ...leave },
    },
    blocked: { on: { DEPENDENCIES_READY: 'pending', OBSERVE: 'observing', ...restart, ...leave } },
    held: { on: { OPERATOR_RETRY: 'pending', RECHECK: 'pending', ...restart, ...leave } },
    // A node re-added to the goals starts over.
    orphaned: { on: { ...restart } },
    deleted: { on: { ...restart } },
  },
});

/** A persisted node-machine snapshot, as stored in `NodeRecord.snapshot` (JSON). */
export interface NodeSnapshot {
  readonly status: 'active';
  readonly value: NodeMachineState;
  readonly historyValue: Readonly<Record<string, never>>;
  readonly context: Readonly<Record<string, never>>;
  readonly children: Readonly<Record<string, never>>;
}

/** The result of one transition. */
export interface NodeTransition {
  readonly snapshot: NodeSnapshot;
  readonly status: NodeStatus;
  /** `ignored` when the state does not accept the event (the node stays where it was). */
  readonly transition: 'taken' | 'ignored';
}

type XSnapshot = ReturnType<typeof nodeMachine.resolveState>;

/** xstate's answer for one (state, event): the reference the table is built from (and tested against). */
export function xstateNextNodeState(state: NodeMachineState, type: NodeEventType): NodeMachineState {
  const [next] = transition(nodeMachine, resolve(state), { type });
  return stateOf(next);
}

function resolve(state: NodeMachineState): XSnapshot {
  return nodeMachine.resolveState({ value: state, context: {} as never });
}

function stateOf(s: XSnapshot): NodeMachineState {
  const v = s.value;
  if (typeof v !== 'string' || !isMachineState(v)) throw new Error(`node machine reached a state it does not declare: ${JSON.stringify(v)}`);
  return v;
}

const MACHINE_STATES: ReadonlySet<string> = new Set(NODE_MACHINE_STATES);

function isMachineState(v: string): v is NodeMachineState {
  return MACHINE_STATES.has(v);
}

function persisted(s: XSnapshot): NodeSnapshot {
  const p = nodeMachine.getPersistedSnapshot(s) as unknown as NodeSnapshot;
  // Frozen: one shared object per state; callers store it as JSON.
  return Object.freeze({
    status: p.status,
    value: p.value,
    historyValue: Object.freeze({ ...p.historyValue }),
    context: Object.freeze({ ...p.context }),
    children: Object.freeze({ ...p.children }),
  });
}

/**
 * Asking xstate costs ~0.1 ms per (state, event); the whole table, 20 ms at
 * every start. So each answer is asked for the first time it is needed and
 * kept: a pass uses a handful of the pairs, and every later lookup is two
 * property reads.
 */
const nextStates = Object.fromEntries(NODE_MACHINE_STATES.map((s) => [s, {}])) as Record<NodeMachineState, Partial<Record<NodeEventType, NodeMachineState>>>;

function nextStateOf(state: NodeMachineState, type: NodeEventType): NodeMachineState {
  const row = nextStates[state];
  return (row[type] ??= xstateNextNodeState(state, type));
}

/** (state, event) → next state for every pair, from the machine (for tests and documentation; the hot path asks pair by pair). */
export function nodeTransitionTable(): Readonly<Record<NodeMachineState, Readonly<Record<NodeEventType, NodeMachineState>>>> {
  return Object.fromEntries(NODE_MACHINE_STATES.map((s) => [s, Object.fromEntries(NODE_EVENT_TYPES.map((e) => [e, nextStateOf(s, e)]))])) as Record<
    NodeMachineState,
    Record<NodeEventType, NodeMachineState>
  >;
}

/** One shared, frozen persisted snapshot per state, made the first time it is needed. */
const snapshots: Partial<Record<NodeMachineState, NodeSnapshot>> = {};

function snapshotOf(state: NodeMachineState): NodeSnapshot {
  return (snapshots[state] ??= persisted(resolve(state)));
}

let initial: NodeSnapshot | undefined;

/** The snapshot of a new node (`pending`). */
export function initialNodeState(): { readonly snapshot: NodeSnapshot; readonly status: NodeStatus } {
  initial ??= persisted(initialTransition(nodeMachine)[0]);
  return { snapshot: initial, status: initial.value };
}

/** The snapshot of a node in `state` (a record's `status`). */
export function nodeSnapshotFor(state: NodeMachineState): NodeSnapshot {
  return snapshotOf(state);
}

/**
 * Reads a stored snapshot (`NodeRecord.snapshot`, parsed JSON). Throws
 * `DS_INVALID_NODE_SNAPSHOT` for anything that is not a snapshot of this
 * machine (a reconciler may then restart the node from `initialNodeState()`:
 * observation re-derives everything).
 */
export function toNodeSnapshot(stored: unknown): NodeSnapshot {
  const value = stored !== null && typeof stored === 'object' ? (stored as { value?: unknown }).value : undefined;
  if ((stored as { status?: unknown } | null)?.status !== 'active' || typeof value !== 'string' || !isMachineState(value)) {
    throw new DesiredStateError(ErrorCodes.InvalidNodeSnapshot, 'stored node snapshot is not a node-machine snapshot this program knows', {
      context: { snapshot: stored },
    });
  }
  return snapshotOf(value);
}

/** The pure transition: where a node in `snapshot` goes on `event`. Hot path: a table lookup. */
export function nextNodeState(snapshot: NodeSnapshot, event: NodeEvent): NodeTransition {
  // Types say the state is known, but snapshots come from disk: fail with a code, not a TypeError.
  const state = isMachineState(snapshot.value) ? snapshot.value : toNodeSnapshot(snapshot).value;
  const next = nextStateOf(state, event.type);
  return { snapshot: snapshotOf(next), status: next, transition: next === state ? 'ignored' : 'taken' };
}

/** Where a node whose record says `status` goes on `event` (a stored status that is not a machine state throws `DS_INVALID_NODE_SNAPSHOT`). */
export function nextStatus(status: NodeStatus, event: NodeEventType): NodeTransition {
  const state = isMachineState(status) ? status : toNodeSnapshot({ status: 'active', value: status }).value;
  return nextNodeState(snapshotOf(state), { type: event });
}

/**
 * Whether an operator's `retry` has anything to release in a node at
 * `status`: the machine takes OPERATOR_RETRY there (held by the fault
 * policy, or failed and waiting out its backoff). A stored status that is
 * not a machine state takes nothing.
 */
export function releasable(status: NodeStatus): boolean {
  return isMachineState(status) && nextStatus(status, 'OPERATOR_RETRY').transition === 'taken';
}
