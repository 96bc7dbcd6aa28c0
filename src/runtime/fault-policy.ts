import { z } from 'zod';
import type { Clock } from './clock.ts';
import { MAX_TIMER_MS, systemClock } from './clock.ts';
import { DesiredStateError, ErrorCodes, assertNever } from './errors.ts';
import type { Fault, FaultClass } from './fault.ts';
import { FAULT_CLASSES } from './fault.ts';
import { isJsonObject } from './json.ts';
import { formatPath } from './zod-diagnostics.ts';

/**
 * The fault policy: plain data, validated once at load. It only ever returns
 * decisions (retry after a delay, or hold); it never touches the graph.
 */

/** A source of uniform numbers in [0, 1). `Math.random` or `seededRng(seed)`. */
export type Rng = () => number;

/** How one fault class is retried. */
export interface ClassPolicy {
  /** Delay cap of the first retry, in ms (full jitter draws in [0, cap)). */
  readonly baseMs: number;
  /** Upper bound of any computed delay, in ms. */
  readonly maxMs: number;
  /** Failed attempts allowed before the budget is spent; `Infinity` means unlimited. */
  readonly retryBudget: number;
  /**
   * When the budget is spent: hold the node for an operator (true), or not (false: the budget then
   * changes nothing, the node is retried on its backoff for ever).
   */
  readonly holdAfterBudget: boolean;
}

export type FaultPolicy = Readonly<Record<FaultClass, ClassPolicy>>;

/** What to do after a failure. A union, so a caller cannot read a delay off a hold. */
export type FaultDecision =
  | { readonly action: 'retry'; readonly delayMs: number }
  | { readonly action: 'hold'; readonly reason: string };

/**
 * Every delay of the policy. Bounded as a timeout is (one platform timer's longest wait): a cool-down
 * of 9e15 ms put an open circuit's probe past the last date there is, and `status` threw on it.
 */
const positiveMs = z.number().int().positive().max(MAX_TIMER_MS, `a delay is at most 24 days (${MAX_TIMER_MS} ms)`);

export const classPolicySchema = z
  .strictObject({
    baseMs: positiveMs,
    maxMs: positiveMs,
    // JSON cannot spell Infinity: `null` means unlimited too.
    retryBudget: z
      .union([z.number().int().positive(), z.literal(Number.POSITIVE_INFINITY), z.null()])
      .transform((v) => v ?? Number.POSITIVE_INFINITY),
    holdAfterBudget: z.boolean(),
  })
  .refine((p) => p.maxMs >= p.baseMs, { message: 'maxMs must be at least baseMs', path: ['maxMs'] });

export const faultPolicySchema = z.strictObject(
  Object.fromEntries(FAULT_CLASSES.map((c) => [c, classPolicySchema])) as Record<FaultClass, typeof classPolicySchema>,
);

/** The policy's input form: what a config file holds (`retryBudget: null` for unlimited). */
export type FaultPolicyInput = z.input<typeof faultPolicySchema>;

const SECOND = 1000;
const MINUTE = 60 * SECOND;

const unlimited = { baseMs: 1 * SECOND, maxMs: 5 * MINUTE, retryBudget: null, holdAfterBudget: false } as const;
const threeThenHold = { baseMs: 1 * SECOND, maxMs: 5 * MINUTE, retryBudget: 3, holdAfterBudget: true } as const;

/** The defaults, in input form (as a config file would write them). */
export const DEFAULT_FAULT_POLICY_INPUT: FaultPolicyInput = {
  transient: unlimited,
  throttled: unlimited,
  unknown: unlimited,
  auth: threeThenHold,
  permanent: threeThenHold,
};

function invalid(what: string, issues: readonly z.core.$ZodIssue[], input: unknown): DesiredStateError {
  const lines = issues.map((i) => `${formatPath(i.path as (string | number)[]) || '(root)'}: ${i.message}`);
  return new DesiredStateError(ErrorCodes.InvalidPolicy, `invalid ${what}: ${lines.join('; ')}`, {
    context: { issues: lines, input },
  });
}

/** Validates policy data once; throws `DS_INVALID_POLICY` naming each bad path (`permanent.maxMs: …`). */
export function parseFaultPolicy(input: unknown): FaultPolicy {
  const parsed = faultPolicySchema.safeParse(input);
  if (!parsed.success) throw invalid('fault policy', parsed.error.issues, input);
  return Object.freeze(
    Object.fromEntries(FAULT_CLASSES.map((c) => [c, Object.freeze(parsed.data[c])])) as Record<FaultClass, ClassPolicy>,
  );
}

/**
 * The defaults, validated form. Written out rather than parsed at import: a
 * first zod parse compiles the schema (~7 ms of every command's start). A
 * test checks it equals `parseFaultPolicy(DEFAULT_FAULT_POLICY_INPUT)`.
 */
export const DEFAULT_FAULT_POLICY: FaultPolicy = Object.freeze({
  transient: Object.freeze({ ...unlimited, retryBudget: Number.POSITIVE_INFINITY }),
  throttled: Object.freeze({ ...unlimited, retryBudget: Number.POSITIVE_INFINITY }),
  unknown: Object.freeze({ ...unlimited, retryBudget: Number.POSITIVE_INFINITY }),
  auth: Object.freeze({ ...threeThenHold }),
  permanent: Object.freeze({ ...threeThenHold }),
});

/**
 * Decides what follows a failure. Pure: same inputs and rng sequence, same
 * answer.
 *
 * `attempts` counts consecutive failed attempts *including* the one that
 * produced `fault` (so 1 after the first failure). The delay uses full
 * jitter: `random(0, min(maxMs, baseMs * 2^(attempts-1)))`. A fault's
 * `retryAfterMs` (a throttling hint) is a floor: the delay is never less.
 */
export function decide(fault: Fault, attempts: number, rng: Rng = Math.random, policy: FaultPolicy = DEFAULT_FAULT_POLICY): FaultDecision {
  const p = policy[fault.class];
  // Garbage in (NaN, negative) must not make a NaN delay: treat as a first failure.
  const n = Number.isFinite(attempts) && attempts >= 1 ? Math.floor(attempts) : 1;
  if (n >= p.retryBudget && p.holdAfterBudget) {
    return { action: 'hold', reason: holdReason(fault.class, n) };
  }
  const cap = Math.min(p.maxMs, p.baseMs * 2 ** (n - 1)); // 2**large is Infinity; min() caps it
  const r = rng();
  const unit = Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0;
  const jittered = Math.floor(unit * cap);
  const hint = fault.retryAfterMs;
  const floor = typeof hint === 'number' && Number.isFinite(hint) && hint > 0 ? Math.ceil(hint) : 0;
  return { action: 'retry', delayMs: Math.max(jittered, floor) };
}

/**
 * What releases a held node: an edit of its own declaration (its spec, `commands` and `labels` too:
 * the controller compares the whole spec's digest) or an operator. An edit of its Backend's settings alone does not.
 */
const RELEASED_BY = 'held until its goal (the node\'s spec) changes or `desiredstate retry NODE`';

function holdReason(cls: FaultClass, attempts: number): string {
  const times = attempts === 1 ? 'once' : `${attempts} times`;
  const after = `after ${attempts} attempt${attempts === 1 ? '' : 's'}`;
  switch (cls) {
    case 'auth':
      return `authentication failed ${times}; ${RELEASED_BY}`;
    case 'permanent':
      return `permanent fault ${after}; ${RELEASED_BY}`;
    case 'transient':
    case 'throttled':
    case 'unknown':
      return `${cls} fault ${after} (retry budget spent); ${RELEASED_BY}`;
    default:
      return assertNever(cls, 'fault class');
  }
}

/** A small, fast, seedable rng (mulberry32) for reproducible jitter in tests and simulations. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// Circuit breaker

/** A circuit breaker's settings: data, validated once. */
export interface CircuitBreakerConfig {
  /**
   * Consecutive counted failures that open the circuit, each of another node (one node failing again
   * and again is that node's fault, which its own backoff deals with, not the backend's). A backend
   * with fewer nodes never opens its circuit: each node's backoff is enough.
   */
  readonly failureThreshold: number;
  /** How long the circuit stays open before one probe is let through. */
  readonly coolDownMs: number;
  /** While a probe is in flight, how long other callers are told to wait before asking again. */
  readonly probeWaitMs: number;
  /** Fault classes that count against the backend (a `permanent` fault is about one node, not the backend). */
  readonly countedClasses: readonly FaultClass[];
}

export const circuitBreakerSchema = z.strictObject({
  failureThreshold: z.number().int().positive(),
  coolDownMs: positiveMs,
  probeWaitMs: positiveMs,
  countedClasses: z.array(z.enum(FAULT_CLASSES)),
});

export const DEFAULT_CIRCUIT_BREAKER: CircuitBreakerConfig = Object.freeze({
  failureThreshold: 5,
  coolDownMs: 30 * SECOND,
  probeWaitMs: 1 * SECOND,
  countedClasses: Object.freeze(['transient', 'throttled', 'auth', 'unknown'] as const),
});

/** Validates breaker settings; partial input is completed from the defaults. */
export function parseCircuitBreakerConfig(input: unknown): CircuitBreakerConfig {
  const merged = isJsonObject(input) ? { ...DEFAULT_CIRCUIT_BREAKER, ...input } : input;
  const parsed = circuitBreakerSchema.safeParse(merged);
  if (!parsed.success) throw invalid('circuit breaker config', parsed.error.issues, input);
  return Object.freeze({ ...parsed.data, countedClasses: Object.freeze([...parsed.data.countedClasses]) });
}

/** Where a breaker stands. */
export type BreakerState =
  | { readonly state: 'closed'; readonly consecutiveFailures: number }
  | { readonly state: 'open'; readonly openedAt: number; readonly probeAt: number }
  | { readonly state: 'half-open'; readonly probeStartedAt: number };

/** The answer to "may I call the backend now?". */
export type BreakerPermit =
  | { readonly verdict: 'allow' }
  /** The one call let through while half-open; its outcome closes or re-opens the circuit. */
  | { readonly verdict: 'probe' }
  | { readonly verdict: 'reject'; readonly retryAt: number };

/** A closed circuit with no failure counted: one object, as the states are never changed in place. */
const CLOSED: BreakerState = Object.freeze({ state: 'closed', consecutiveFailures: 0 });

/** What a recorded outcome did to a circuit: opened it, closed it, or nothing worth saying. */
export type BreakerChange = 'opened' | 'closed' | undefined;

/**
 * A per-backend circuit breaker: closed → open after `failureThreshold`
 * consecutive counted failures of as many callers (nodes) → half-open after
 * `coolDownMs`, letting one probe through → closed on its success, open again
 * on its failure. It decides nothing about nodes; callers requeue rejected
 * work at `retryAt`.
 */
export class CircuitBreaker {
  readonly config: CircuitBreakerConfig;
  readonly #clock: Clock;
  #state: BreakerState = CLOSED;
  /** The callers of the failures counted since the last success (a failure given none counts each time). */
  readonly #streak = new Set<string>();

  constructor(options: { config?: CircuitBreakerConfig; clock?: Clock } = {}) {
    this.config = options.config ?? DEFAULT_CIRCUIT_BREAKER;
    this.#clock = options.clock ?? systemClock;
  }

  /** The current state (an open circuit past its cool-down still reads `open` until asked). */
  get state(): BreakerState {
    return this.#state;
  }

  /** Asks to call the backend. A `probe` permit must be followed by `recordSuccess` or `recordFailure`. */
  acquire(): BreakerPermit {
    const now = this.#clock.now();
    const s = this.#state;
    switch (s.state) {
      case 'closed':
        return { verdict: 'allow' };
      case 'open':
        if (now < s.probeAt) return { verdict: 'reject', retryAt: s.probeAt };
        this.#state = { state: 'half-open', probeStartedAt: now };
        return { verdict: 'probe' };
      case 'half-open':
        // A probe whose outcome never came (aborted, crashed caller) must not wedge the circuit.
        if (now - s.probeStartedAt >= this.config.coolDownMs) {
          this.#state = { state: 'half-open', probeStartedAt: now };
          return { verdict: 'probe' };
        }
        return { verdict: 'reject', retryAt: now + this.config.probeWaitMs };
      default:
        return assertNever(s, 'breaker state');
    }
  }

  /**
   * Gives a probe permit back unused: the circuit is open again, its probe due now, for another
   * caller (a node that answered before the circuit opened tells more of the backend than one that
   * was failing on its own).
   */
  cancelProbe(): void {
    if (this.#state.state !== 'half-open') return;
    const now = this.#clock.now();
    this.#state = { state: 'open', openedAt: now, probeAt: now };
  }

  /** The backend answered: closes the circuit. Says `closed` when that ended an outage. */
  recordSuccess(): BreakerChange {
    const s = this.#state;
    // The hot path: every answer of a healthy backend (100k a pass) lands here. Nothing to reset is
    // nothing allocated (Set#clear makes a new table even for an empty set).
    if (s.state === 'closed' && s.consecutiveFailures === 0 && this.#streak.size === 0) return undefined;
    this.#state = CLOSED;
    this.#streak.clear();
    return s.state === 'closed' ? undefined : 'closed';
  }

  /**
   * The backend failed. Faults of uncounted classes prove the backend answered, so they count as
   * success. A failure of a caller (`source`: a node) already counted since the last success is not
   * counted again: a few nodes failing on their own, retried on their backoff, never add up to an
   * outage of the backend. Says `opened` when this failure opened the circuit (again, after a failed
   * probe). A fault that says nothing of the backend (`Fault.notTheBackend`: raised before it was
   * called, a reference still waiting for a dependency's output; or about the node's own resource
   * alone, a path a symlink made by hand leads out of the root, a directory it may not enter) counts
   * neither way: not counted, and a probe let through for it, unused, is given back.
   */
  recordFailure(fault: Fault, source?: string): BreakerChange {
    if (fault.notTheBackend !== undefined) {
      this.cancelProbe();
      return undefined;
    }
    if (!this.config.countedClasses.includes(fault.class)) return this.recordSuccess();
    const now = this.#clock.now();
    const s = this.#state;
    switch (s.state) {
      case 'closed': {
        if (source !== undefined) {
          if (this.#streak.has(source)) return undefined;
          this.#streak.add(source);
        }
        const failures = s.consecutiveFailures + 1;
        if (failures < this.config.failureThreshold) {
          this.#state = { state: 'closed', consecutiveFailures: failures };
          return undefined;
        }
        this.#state = this.#open(now);
        return 'opened';
      }
      case 'half-open':
        this.#state = this.#open(now);
        return 'opened';
      case 'open':
        // A call that was allowed before the circuit opened failed late: stay open, keep the cool-down.
        return undefined;
      default:
        return assertNever(s, 'breaker state');
    }
  }

  #open(now: number): BreakerState {
    this.#streak.clear();
    return { state: 'open', openedAt: now, probeAt: now + this.config.coolDownMs };
  }
}

/** One breaker per backend id, created on first use with the same config and clock. */
export class CircuitBreakers {
  readonly #breakers = new Map<string, CircuitBreaker>();
  readonly #config: CircuitBreakerConfig;
  readonly #clock: Clock;

  constructor(options: { config?: CircuitBreakerConfig; clock?: Clock } = {}) {
    this.#config = options.config ?? DEFAULT_CIRCUIT_BREAKER;
    this.#clock = options.clock ?? systemClock;
  }

  /** The breaker of a backend. */
  for(backendId: string): CircuitBreaker {
    let b = this.#breakers.get(backendId);
    if (b === undefined) {
      b = new CircuitBreaker({ config: this.#config, clock: this.#clock });
      this.#breakers.set(backendId, b);
    }
    return b;
  }

  /** Every breaker's state, for status and health. */
  states(): ReadonlyMap<string, BreakerState> {
    return new Map([...this.#breakers].map(([id, b]) => [id, b.state]));
  }
}
