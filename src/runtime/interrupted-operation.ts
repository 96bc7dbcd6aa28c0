import type { OperationOutcome, PendingOperation } from './state-store.ts';

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
