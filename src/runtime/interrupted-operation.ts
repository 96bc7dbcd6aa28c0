import { heldCannotTell } from './node-record.ts';
import type { NodeRecord, OperationOutcome, PendingOperation } from './state-store.ts';

/**
 * What observing a node found of the resource an interrupted operation worked on: nothing, something
 * with changes left to make (drift that counts, `ignoreFields` aside), or the resource as desired.
 */
export type FoundAfterInterruption = 'absent' | 'changes-left' | 'as-desired';

/**
 * How an operation a crash (or a shutdown's cut-off) left pending ends once its node is observed:
 * `adopted` only when it is found done — a create's resource there (even if it still needs an
 * update), an update's with nothing left to change, a delete's gone —, `abandoned` otherwise (the
 * node is reconciled from what was found, never the operation repeated blindly). The one decision
 * of `apply` and the daemon, so that the journal and `history` say the same whichever ran after the
 * crash, and never that a change was found made when it was not.
 */
export function interruptedOutcome(op: PendingOperation['op'], found: FoundAfterInterruption): { readonly outcome: Extract<OperationOutcome, 'adopted' | 'abandoned'>; readonly detail: string } {
  const done = op === 'create' ? found !== 'absent' : op === 'update' ? found === 'as-desired' : found === 'absent';
  return done ? { outcome: 'adopted', detail: `found done after an interrupted ${op}` } : { outcome: 'abandoned', detail: `not found done after an interrupted ${op}; the node is observed again` };
}

/**
 * Ends each of `ops`, the operations a crash left pending on a node just observed, by what was found
 * (`interruptedOutcome`): `finish` records each outcome. As apply and the daemon resolve them.
 */
export function finishInterrupted(
  ops: readonly PendingOperation[] | undefined,
  found: FoundAfterInterruption,
  finish: (op: PendingOperation, outcome: ReturnType<typeof interruptedOutcome>['outcome'], detail: string) => void,
): void {
  for (const op of ops ?? []) {
    const { outcome, detail } = interruptedOutcome(op.op, found);
    finish(op, outcome, detail);
  }
}

/**
 * Ends `ops`, the operations a crash left pending on a node removed from the goals whose read before
 * its delete found it there, as `finish` records them: the delete begun now takes their place. (Found
 * gone, they end by `finishInterrupted`: a delete cut short is adopted, found done.)
 */
export function finishReplacedByDelete(ops: readonly PendingOperation[] | undefined, finish: (op: PendingOperation, outcome: Extract<OperationOutcome, 'abandoned'>, detail: string) => void): void {
  for (const op of ops ?? []) finish(op, 'abandoned', 'interrupted; deleted again');
}

/** Whether a crash cut short a create among a node's pending operations `ops`: what its next read is told (`OperationContext.interrupted`). */
export function hasInterruptedCreate(ops: readonly PendingOperation[] | undefined): boolean {
  return ops?.some((op) => op.op === 'create') === true;
}

/**
 * Ends `ops`, the operations pending on a node an operator released (`desiredstate retry`), as `finish`
 * records them, when its record `rec` says a read could not tell what an interrupted create made
 * (`heldCannotTell`): the operator has checked. Otherwise they stay pending: a failed node released from
 * its backoff is observed as at its end, its next read still told the create was interrupted
 * (`hasInterruptedCreate`), never invited to make a second resource. Whether they were ended.
 */
export function finishReleased(
  rec: NodeRecord | undefined,
  ops: readonly PendingOperation[] | undefined,
  finish: (op: PendingOperation, outcome: Extract<OperationOutcome, 'abandoned'>, detail: string) => void,
): boolean {
  if (rec === undefined || !heldCannotTell(rec)) return false;
  for (const op of ops ?? []) finish(op, 'abandoned', 'released by operator');
  return true;
}
