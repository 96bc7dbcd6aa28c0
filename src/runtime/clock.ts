/** A scheduled callback; `cancel()` is idempotent and safe after it fired. */
export interface ClockTimer {
  cancel(): void;
}

/**
 * Time, injected. Everything that waits or stamps a time takes a `Clock`, so
 * that backoff, intervals and timeouts are testable without sleeping.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Calls `fn` once, after at least `ms` milliseconds (negative counts as 0). */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  /** Same as `timer.cancel()`; accepts `undefined` for convenience. */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/** The longest wait the platform's timers take in one go (2^31-1 ms, 24.8 days). */
export const MAX_TIMER_MS = 2_147_483_647;

/** The real clock: `Date.now()` and the platform's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    // The platform fires a timer of more than MAX_TIMER_MS after 1 ms (with a warning): a longer
    // wait is taken in parts.
    let handle: NodeJS.Timeout;
    const arm = (left: number): void => {
      handle = left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
    };
    arm(Math.max(0, ms));
    return { cancel: () => clearTimeout(handle) };
  },
  clearTimeout(timer) {
    timer?.cancel();
  },
};

interface FakeTimer {
  readonly seq: number;
  readonly at: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/**
 * A clock for tests: time moves only when `advance` (or `advanceAsync`) is
 * called, firing due timers in due-time order (ties in scheduling order) with
 * `now()` set to each timer's due time.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: FakeTimer[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const timer: FakeTimer = { seq: this.#seq++, at: this.#now + Math.max(0, ms), fn, cancelled: false };
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    timer?.cancel();
  }

  /** Timers scheduled and neither fired nor cancelled. */
  pendingTimers(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, firing every timer due on the way. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (let next = this.#nextDue(until); next !== undefined; next = this.#nextDue(until)) {
      this.#now = next.at;
      next.fn();
    }
    this.#now = until;
  }

  /**
   * Like `advance`, but lets promise callbacks run after each timer, so that
   * code awaiting a timer-resolved promise reacts before the next one fires.
   */
  async advanceAsync(ms: number): Promise<void> {
    const until = this.#now + ms;
    await flushMicrotasks();
    for (let next = this.#nextDue(until); next !== undefined; next = this.#nextDue(until)) {
      this.#now = next.at;
      next.fn();
      await flushMicrotasks();
    }
    this.#now = until;
  }

  #nextDue(until: number): FakeTimer | undefined {
    this.#timers = this.#timers.filter((t) => !t.cancelled);
    let best: FakeTimer | undefined;
    for (const t of this.#timers) {
      if (t.at <= until && (best === undefined || t.at < best.at || (t.at === best.at && t.seq < best.seq))) best = t;
    }
    if (best !== undefined) best.cancelled = true; // fired: drop it on the next sweep
    return best;
  }
}

/** Lets every already-queued promise callback (and the ones they queue) run. */
export function flushMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
