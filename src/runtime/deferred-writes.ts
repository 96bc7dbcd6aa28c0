import type { ProvisionResult } from './provisioner.ts';
import type { OperationOutcome, StateStore } from './state-store.ts';

/**
 * Store writes that may wait for the next commit, and that commit. Crash
 * safety needs only some writes on disk before a backend call (the
 * operations about to run, as pending); the rest (drift reports, operation
 * outcomes) go with the next commit, so a pass or a batch costs two WAL
 * fsyncs, not one per node. What a crash loses of them is harmless: a drift
 * is reported again, and an operation left pending is resolved by observing
 * at the restart, as any interrupted one. Shared by the one-shot pass
 * (Reconciler) and the daemon (Controller).
 */
export class DeferredWrites {
  readonly #store: StateStore;
  readonly #writes: (() => void)[] = [];

  constructor(store: StateStore) {
    this.#store = store;
  }

  /** How many writes wait for the next commit. */
  get size(): number {
    return this.#writes.length;
  }

  /** Queues a write for the next commit. */
  defer(write: () => void): void {
    this.#writes.push(write);
  }

  /** Queues the end of an operation: `outcome` with `detail`. */
  finish(opId: number, outcome: OperationOutcome, detail?: string): void {
    this.defer(() => this.#store.finishOperation(opId, outcome, detail));
  }

  /** Queues a backend call's result as the end of its operation. */
  finished(opId: number, result: ProvisionResult): void {
    if (result.status === 'done') this.finish(opId, 'done');
    else this.finish(opId, 'failed', result.fault.message);
  }

  /**
   * One transaction: the queued writes, then `fn`'s; durable when it returns. When it throws
   * (a full disk) everything was rolled back, and the queued writes wait for the next commit.
   */
  commit<T>(fn: () => T): T {
    const writes = this.#writes.slice();
    const result = this.#store.transaction(() => {
      for (const w of writes) w();
      return fn();
    });
    this.#writes.splice(0, writes.length);
    return result;
  }
}
