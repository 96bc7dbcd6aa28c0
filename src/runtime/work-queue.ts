import type { Clock, ClockTimer } from './clock.ts';
import { systemClock } from './clock.ts';
import type { NodeId } from './node-spec.ts';

/** Counts, for status and tests. */
export interface WorkQueueStats {
  /** Due and waiting for a `get()`. */
  readonly ready: number;
  /** Handed out by `get()` (or claimed) and not yet `done()`. */
  readonly processing: number;
  /** Scheduled for later by `addAfter`. */
  readonly delayed: number;
  /**
   * Handed out since the queue was made: in the daemon, one each time a worker takes a node, whatever it
   * does with it (observes it, deletes it, or passes it over: held, blocked, in its backoff, circuit open).
   */
  readonly handedOut: number;
}

interface DelayedEntry<K> {
  readonly id: K;
  dueAt: number;
  /** Insertion order, so that equal due times come out first-in first-out. */
  seq: number;
}

/**
 * A binary min-heap of delayed entries keyed by due time, with an index by id
 * so that an entry can be moved earlier or removed in O(log n).
 */
class DelayHeap<K> {
  readonly #items: DelayedEntry<K>[] = [];
  readonly #pos = new Map<K, number>();

  get size(): number {
    return this.#items.length;
  }

  peek(): DelayedEntry<K> | undefined {
    return this.#items[0];
  }

  get(id: K): DelayedEntry<K> | undefined {
    const i = this.#pos.get(id);
    return i === undefined ? undefined : this.#items[i];
  }

  push(entry: DelayedEntry<K>): void {
    this.#items.push(entry);
    this.#pos.set(entry.id, this.#items.length - 1);
    this.#up(this.#items.length - 1);
  }

  /** Moves an entry to an earlier due time. */
  decrease(id: K, dueAt: number, seq: number): void {
    const i = this.#pos.get(id);
    if (i === undefined) return;
    const e = this.#items[i]!;
    e.dueAt = dueAt;
    e.seq = seq;
    this.#up(i);
  }

  pop(): DelayedEntry<K> | undefined {
    const top = this.#items[0];
    if (top !== undefined) this.remove(top.id);
    return top;
  }

  remove(id: K): boolean {
    const i = this.#pos.get(id);
    if (i === undefined) return false;
    const last = this.#items.pop()!;
    this.#pos.delete(id);
    if (i < this.#items.length) {
      this.#items[i] = last;
      this.#pos.set(last.id, i);
      this.#down(i);
      this.#up(i);
    }
    return true;
  }

  clear(): void {
    this.#items.length = 0;
    this.#pos.clear();
  }

  #less(a: DelayedEntry<K>, b: DelayedEntry<K>): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.seq < b.seq);
  }

  #swap(i: number, j: number): void {
    const a = this.#items[i]!;
    const b = this.#items[j]!;
    this.#items[i] = b;
    this.#items[j] = a;
    this.#pos.set(b.id, i);
    this.#pos.set(a.id, j);
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#less(this.#items[i]!, this.#items[parent]!)) return;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #down(i: number): void {
    const n = this.#items.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.#less(this.#items[l]!, this.#items[m]!)) m = l;
      if (r < n && this.#less(this.#items[r]!, this.#items[m]!)) m = r;
      if (m === i) return;
      this.#swap(i, m);
      i = m;
    }
  }
}

/** A FIFO with O(1) amortised push and shift (no `Array.shift`, which is O(n)). */
class Fifo<K> {
  #items: K[] = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(id: K): void {
    this.#items.push(id);
  }

  shift(): K | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const id = this.#items[this.#head++];
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return id;
  }

  /** Removes one id (rare: a node forgotten while queued). */
  delete(id: K): void {
    const i = this.#items.indexOf(id, this.#head);
    if (i >= 0) this.#items.splice(i, 1);
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/**
 * A level-triggered work queue keyed by node id, in the controller-runtime
 * style. An id stands for "look at this node again", never for an event, so:
 *
 * - an id queued twice before it is taken is processed once;
 * - an id added while it is being processed is handed out again after its
 *   `done()`, never to two consumers at once;
 * - `addAfter` keeps only the soonest due time per id: a later one for an id
 *   already due sooner is ignored, a sooner one replaces it; `add` is the
 *   soonest of all and drops any delayed entry.
 *
 * Concurrency is the consumer's: run N loops of `get()` … `done(id)`.
 * Delayed ids sit in one heap behind one timer (for the earliest), so 100k
 * delayed ids cost no timers and an idle queue costs no CPU.
 */
export class WorkQueue<K = NodeId> {
  readonly #clock: Clock;
  readonly #ready = new Fifo<K>();
  /** Ids waiting in `#ready` (or to be re-queued at `done()` when processing). */
  readonly #dirty = new Set<K>();
  readonly #processing = new Set<K>();
  #handedOut = 0;
  readonly #delayed = new DelayHeap<K>();
  #seq = 0;
  #waiters: ((id: K | undefined) => void)[] = [];
  #idleWaiters: (() => void)[] = [];
  #timer: { readonly handle: ClockTimer; readonly at: number } | undefined;
  #shutDown = false;

  constructor(options: { clock?: Clock } = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  /** True once `shutDown()` was called. */
  get isShutDown(): boolean {
    return this.#shutDown;
  }

  stats(): WorkQueueStats {
    return { ready: this.#ready.size, processing: this.#processing.size, delayed: this.#delayed.size, handedOut: this.#handedOut };
  }

  /** Whether `id` was handed out and is not `done()` yet. */
  isProcessing(id: K): boolean {
    return this.#processing.has(id);
  }

  /** Whether `id` is due now: waiting to be handed out, or to be handed out again once `done()`. */
  isDue(id: K): boolean {
    return this.#dirty.has(id);
  }

  /** Marks an id due now. Ignored after shutdown. */
  add(id: K): void {
    if (this.#shutDown) return;
    if (this.#delayed.remove(id)) this.#rearm();
    if (this.#dirty.has(id)) return;
    this.#dirty.add(id);
    // Processing: `done()` re-queues it, so that it never runs twice at once.
    if (this.#processing.has(id)) return;
    this.#enqueue(id);
  }

  /** Marks an id due after `delayMs`, unless it is already due sooner. `delayMs <= 0` is `add`. */
  addAfter(id: K, delayMs: number): void {
    if (this.#shutDown) return;
    if (!(delayMs > 0)) {
      // NaN lands here too: better now than never.
      this.add(id);
      return;
    }
    if (this.#dirty.has(id)) return; // already due now
    const dueAt = this.#clock.now() + delayMs;
    const existing = this.#delayed.get(id);
    if (existing !== undefined) {
      if (existing.dueAt <= dueAt) return;
      this.#delayed.decrease(id, dueAt, this.#seq++);
    } else {
      this.#delayed.push({ id, dueAt, seq: this.#seq++ });
    }
    this.#rearm();
  }

  /** Forgets an id that is queued or delayed (a node removed from the graph). Processing is not interrupted. */
  forget(id: K): void {
    if (this.#delayed.remove(id)) this.#rearm();
    if (this.#dirty.delete(id) && !this.#processing.has(id)) this.#ready.delete(id);
  }

  /**
   * The next due id, waiting if there is none. Resolves `undefined` once the
   * queue is shut down (ids still queued then are not handed out). Every id
   * handed out must be given back with `done(id)`.
   */
  get(): Promise<K | undefined> {
    if (this.#shutDown) return Promise.resolve(undefined);
    const id = this.#take();
    if (id !== undefined) return Promise.resolve(id);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Takes `id` out of turn, as if `get()` had handed it out (whether it was due, delayed or not queued):
   * no consumer is handed it until `done(id)`, and an `add` meanwhile hands it out after that. False,
   * and nothing taken, when it is being processed already or the queue is shut down.
   */
  claim(id: K): boolean {
    if (this.#shutDown || this.#processing.has(id)) return false;
    if (this.#delayed.remove(id)) this.#rearm();
    if (this.#dirty.delete(id)) this.#ready.delete(id);
    this.#processing.add(id);
    return true;
  }

  /** Ends the processing of an id; re-queues it if it was added meanwhile. */
  done(id: K): void {
    if (!this.#processing.delete(id)) return;
    if (this.#dirty.has(id) && !this.#shutDown) this.#enqueue(id);
    this.#checkIdle();
  }

  /**
   * Resolves when nothing is due and nothing is processing (delayed ids may
   * remain): the end of a pass for one-shot commands, or of draining after
   * `shutDown()`.
   */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops handing out work: waiting and future `get()` resolve `undefined`; timers are cancelled. */
  shutDown(): void {
    if (this.#shutDown) return;
    this.#shutDown = true;
    this.#clock.clearTimeout(this.#timer?.handle);
    this.#timer = undefined;
    this.#delayed.clear();
    this.#ready.clear();
    for (const id of [...this.#dirty]) if (!this.#processing.has(id)) this.#dirty.delete(id);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(undefined);
    this.#checkIdle();
  }

  #enqueue(id: K): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#dirty.delete(id);
      this.#processing.add(id);
      this.#handedOut++;
      waiter(id);
    } else {
      this.#ready.push(id);
    }
  }

  #take(): K | undefined {
    const id = this.#ready.shift();
    if (id === undefined) return undefined;
    this.#dirty.delete(id);
    this.#processing.add(id);
    this.#handedOut++;
    return id;
  }

  /** Keeps exactly one timer, set for the earliest delayed id. */
  #rearm(): void {
    const top = this.#delayed.peek();
    if (top === undefined) {
      this.#clock.clearTimeout(this.#timer?.handle);
      this.#timer = undefined;
      return;
    }
    if (this.#timer !== undefined && this.#timer.at <= top.dueAt) return; // fires in time; re-arms then
    this.#clock.clearTimeout(this.#timer?.handle);
    const at = top.dueAt;
    this.#timer = { at, handle: this.#clock.setTimeout(() => this.#fire(), at - this.#clock.now()) };
  }

  #fire(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    for (let top = this.#delayed.peek(); top !== undefined && top.dueAt <= now; top = this.#delayed.peek()) {
      this.#delayed.pop();
      this.add(top.id);
    }
    this.#rearm();
  }

  #isIdle(): boolean {
    return this.#ready.size === 0 && this.#processing.size === 0;
  }

  #checkIdle(): void {
    if (!this.#isIdle() || this.#idleWaiters.length === 0) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }
}
