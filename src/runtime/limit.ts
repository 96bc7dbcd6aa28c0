import { flushMicrotasks } from './clock.ts';
import { fault, FaultError } from './fault.ts';

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  await mapLimit(items, limit, fn);
}

/**
 * `forEachLimit` where the items that share a key (`keyOf`; undefined: none) run one after another, in
 * input order, as one of the `limit` in flight: items that would wait for each other never take the
 * places of those that need not.
 */
export async function forEachKeyedLimit<T>(
  items: readonly T[],
  limit: number,
  keyOf: (item: T, index: number) => string | undefined,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  const groups: number[][] = [];
  const byKey = new Map<string, number[]>();
  items.forEach((item, i) => {
    const key = keyOf(item, i);
    const group = key === undefined ? undefined : byKey.get(key);
    if (group !== undefined) return void group.push(i);
    groups.push([i]);
    if (key !== undefined) byKey.set(key, groups.at(-1)!);
  });
  await forEachLimit(groups, limit, async (group) => {
    for (const i of group) await fn(items[i]!, i);
  });
}

/**
 * At most `size` units of work in flight across every caller (the daemon's
 * `--concurrency`, shared by its worker loops). A task takes `weight` units
 * (a batch call that runs that many operations at once), at most `size`;
 * tasks start in the order they asked, so a heavy one is never starved.
 */
export class Semaphore {
  readonly size: number;
  #free: number;
  readonly #waiting: { weight: number; start: () => void }[] = [];

  constructor(size: number) {
    this.size = Math.max(1, size);
    this.#free = this.size;
  }

  /** Runs `task` once `weight` units are free; `signal` aborted while it waits, it leaves the queue and rejects with a transient fault. */
  async run<T>(task: () => Promise<T>, weight = 1, signal?: AbortSignal): Promise<T> {
    const w = Math.min(Math.max(1, weight), this.size);
    if (this.#waiting.length === 0 && this.#free >= w) this.#free -= w;
    else await this.#wait(w, signal);
    try {
      return await task();
    } finally {
      this.#free += w;
      this.#startWaiting();
    }
  }

  #wait(weight: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(abortedWaiting());
        return;
      }
      const drop = (): void => {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        reject(abortedWaiting());
        // A heavy task dropped from the head of the queue no longer holds back the lighter ones behind it.
        this.#startWaiting();
      };
      const waiter = {
        weight,
        start: (): void => {
          signal?.removeEventListener('abort', drop);
          resolve();
        },
      };
      signal?.addEventListener('abort', drop, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #startWaiting(): void {
    for (let next = this.#waiting[0]; next !== undefined && this.#free >= next.weight; next = this.#waiting[0]) {
      this.#waiting.shift();
      this.#free -= next.weight;
      next.start();
    }
  }
}

/** What a task waiting its turn (`Semaphore`, `KeyedSerializer`) rejects with when its signal aborts: transient, it never ran. */
function abortedWaiting(): FaultError {
  return new FaultError(fault('transient', 'operation aborted while waiting its turn', { code: 'aborted' }));
}

/**
 * Runs tasks that share a key one after another, and tasks with different
 * keys in parallel (for example statements that update the same catalog row).
 */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  /**
   * Runs `task` once the tasks asked for before it under `key` are done; `signal` aborted while it waits,
   * it leaves the queue (it never runs, and the next waits only for those before it) and rejects with a
   * transient fault, as `Semaphore.run`'s tasks do.
   */
  run<T>(key: string, task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted === true) return Promise.reject(abortedWaiting());
    const previous = this.tails.get(key) ?? Promise.resolve();
    let left = false;
    let leave = (): void => undefined;
    const turn = previous.then(() => {
      if (left) return undefined;
      signal?.removeEventListener('abort', leave);
      return task();
    });
    const result = new Promise<T>((resolve, reject) => {
      leave = (): void => {
        left = true;
        reject(abortedWaiting());
      };
      signal?.addEventListener('abort', leave, { once: true });
      // Left, `turn` settles once those before it are done, and that answer is moot.
      turn.then((value) => resolve(value as T), reject);
    });
    const tail = turn.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/**
 * `Semaphore` slots that the tasks sharing a key take in turns (`KeyedSerializer`): such a task waits until
 * those asked for before it under its key are done, holding no slot meanwhile, and only then takes one. The
 * daemon's `--concurrency`, shared by its worker loops and its deletes: changes that would wait for each
 * other's turn in their backend (`NodeProvisioner.serialKey`) wait here instead, never in a slot.
 */
export class KeyedSlots {
  readonly #slots: Semaphore;
  readonly #turns = new KeyedSerializer();

  constructor(size: number) {
    this.#slots = new Semaphore(size);
  }

  /** Runs `task` in `weight` slots (`Semaphore.run`), with a `key` once its turn under it has come. */
  run<T>(task: () => Promise<T>, options: { readonly weight?: number; readonly key?: string | undefined } = {}): Promise<T> {
    const slotted = (): Promise<T> => this.#slots.run(task, options.weight);
    return options.key === undefined ? slotted() : this.#turns.run(options.key, slotted);
  }
}

/** How long a slice of synchronous work runs before `Pacer` lets the event loop turn. */
export const PACE_SLICE_MS = 4;

/**
 * Cooperative slicing of synchronous work (many small filesystem calls, say):
 * `pace()` is undefined while the current slice has run less than `sliceMs`,
 * and otherwise a promise that resolves after one turn of the event loop
 * (timers, I/O callbacks, signals), the same promise for every caller that
 * asks meanwhile. Awaited before each item, it keeps a batch of any size from
 * holding the loop longer than a slice and one item.
 */
export class Pacer {
  readonly #sliceMs: number;
  #since = performance.now();
  #turn: Promise<void> | undefined;

  constructor(sliceMs = PACE_SLICE_MS) {
    this.#sliceMs = sliceMs;
  }

  pace(): Promise<void> | undefined {
    if (this.#turn !== undefined || performance.now() - this.#since < this.#sliceMs) return this.#turn;
    this.#turn = flushMicrotasks().then(() => {
      this.#turn = undefined;
      this.#since = performance.now();
    });
    return this.#turn;
  }
}
