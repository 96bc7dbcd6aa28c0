import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/runtime/clock.ts';
import { DesiredStateError, ErrorCodes } from '../../src/runtime/errors.ts';
import type { Fault, FaultClass } from '../../src/runtime/fault.ts';
import { FAULT_CLASSES, fault } from '../../src/runtime/fault.ts';
import type { FaultDecision } from '../../src/runtime/fault-policy.ts';
import {
  CircuitBreaker,
  CircuitBreakers,
  DEFAULT_CIRCUIT_BREAKER,
  DEFAULT_FAULT_POLICY,
  DEFAULT_FAULT_POLICY_INPUT,
  decide,
  parseCircuitBreakerConfig,
  parseFaultPolicy,
  seededRng,
} from '../../src/runtime/fault-policy.ts';

const always = (v: number) => () => v;
const MAX = 5 * 60_000;

describe('decide', () => {
  it.each([
    { name: 'transient, first failure, rng 0: no wait', f: fault('transient', 'x'), attempts: 1, rng: 0, expected: { action: 'retry', delayMs: 0 } },
    { name: 'transient, first failure, rng ~1: just under base', f: fault('transient', 'x'), attempts: 1, rng: 0.9999, expected: { action: 'retry', delayMs: 999 } },
    { name: 'transient, 4th failure: cap base*2^3', f: fault('transient', 'x'), attempts: 4, rng: 0.5, expected: { action: 'retry', delayMs: 4000 } },
    { name: 'transient, 20th failure: capped at maxMs', f: fault('transient', 'x'), attempts: 20, rng: 0.5, expected: { action: 'retry', delayMs: MAX / 2 } },
    { name: 'transient, 5000th failure: 2^n overflow stays capped', f: fault('transient', 'x'), attempts: 5000, rng: 0.5, expected: { action: 'retry', delayMs: MAX / 2 } },
    { name: 'unknown: unlimited budget', f: fault('unknown', 'x'), attempts: 1000, rng: 0, expected: { action: 'retry', delayMs: 0 } },
    { name: 'throttled: retry-after is a floor', f: fault('throttled', 'x', { retryAfterMs: 7000 }), attempts: 1, rng: 0.5, expected: { action: 'retry', delayMs: 7000 } },
    { name: 'throttled: jitter above retry-after wins', f: fault('throttled', 'x', { retryAfterMs: 100 }), attempts: 5, rng: 0.5, expected: { action: 'retry', delayMs: 8000 } },
    { name: 'throttled without hint: like transient', f: fault('throttled', 'x'), attempts: 2, rng: 0.5, expected: { action: 'retry', delayMs: 1000 } },
    { name: 'throttled with a NaN hint: ignored', f: fault('throttled', 'x', { retryAfterMs: Number.NaN }), attempts: 1, rng: 0, expected: { action: 'retry', delayMs: 0 } },
    { name: 'auth within budget: retried', f: fault('auth', 'denied'), attempts: 2, rng: 0.5, expected: { action: 'retry', delayMs: 1000 } },
    { name: 'auth budget spent: held', f: fault('auth', 'denied'), attempts: 3, rng: 0.5, expected: { action: 'hold' } },
    { name: 'permanent budget spent: held', f: fault('permanent', 'bad'), attempts: 3, rng: 0.5, expected: { action: 'hold' } },
    { name: 'permanent well past budget: still held', f: fault('permanent', 'bad'), attempts: 99, rng: 0.5, expected: { action: 'hold' } },
    { name: 'garbage attempts (NaN): treated as a first failure', f: fault('transient', 'x'), attempts: Number.NaN, rng: 0.5, expected: { action: 'retry', delayMs: 500 } },
    { name: 'garbage rng (NaN): no NaN delay', f: fault('transient', 'x'), attempts: 3, rng: Number.NaN, expected: { action: 'retry', delayMs: 0 } },
  ])('$name', ({ f, attempts, rng, expected }) => {
    const d = decide(f, attempts, always(rng));
    expect(d).toMatchObject(expected);
    if (d.action === 'hold') expect(d.reason).toMatch(/; held until its goal \(the node's spec\) changes or `desiredstate retry NODE`$/);
  });

  // Said what releases the node (an edit of its own spec; "the goal changes" read as any edit of the goals), and in English after one attempt.
  it.each([
    { cls: 'permanent', attempts: 1, says: "permanent fault after 1 attempt; held until its goal (the node's spec) changes or `desiredstate retry NODE`" },
    { cls: 'permanent', attempts: 3, says: "permanent fault after 3 attempts; held until its goal (the node's spec) changes or `desiredstate retry NODE`" },
    { cls: 'auth', attempts: 1, says: "authentication failed once; held until its goal (the node's spec) changes or `desiredstate retry NODE`" },
    { cls: 'auth', attempts: 3, says: "authentication failed 3 times; held until its goal (the node's spec) changes or `desiredstate retry NODE`" },
    { cls: 'transient', attempts: 1, says: "transient fault after 1 attempt (retry budget spent); held until its goal (the node's spec) changes or `desiredstate retry NODE`" },
  ] satisfies { cls: FaultClass; attempts: number; says: string }[])('the $cls hold after $attempts attempt(s) says so', ({ cls, attempts, says }) => {
    const policy = parseFaultPolicy({ ...DEFAULT_FAULT_POLICY_INPUT, [cls]: { baseMs: 1000, maxMs: 1000, retryBudget: 1, holdAfterBudget: true } });
    expect(decide(fault(cls, 'x'), attempts, always(0), policy)).toEqual({ action: 'hold', reason: says });
  });

  it('the written-out defaults are exactly what validating their input form gives (frozen, unlimited as Infinity)', () => {
    expect(DEFAULT_FAULT_POLICY).toEqual(parseFaultPolicy(DEFAULT_FAULT_POLICY_INPUT));
    expect(Object.isFrozen(DEFAULT_FAULT_POLICY)).toBe(true);
    for (const cls of FAULT_CLASSES) expect(Object.isFrozen(DEFAULT_FAULT_POLICY[cls])).toBe(true);
  });

  it.each(FAULT_CLASSES.flatMap((cls) => [1, 2, 3, 5, 10, 30].map((attempts) => ({ cls, attempts }))))(
    'full jitter stays in [0, min(max, base*2^(n-1))) for $cls after $attempts failures',
    ({ cls, attempts }) => {
      const rng = seededRng(attempts * 31 + cls.length);
      const p = DEFAULT_FAULT_POLICY[cls];
      const cap = Math.min(p.maxMs, p.baseMs * 2 ** (attempts - 1));
      for (let i = 0; i < 500; i++) {
        const d = decide(fault(cls, 'x'), attempts, rng);
        if (attempts >= p.retryBudget && p.holdAfterBudget) {
          expect(d.action).toBe('hold');
          continue;
        }
        if (d.action !== 'retry') throw new Error('expected a retry');
        expect(d.delayMs).toBeGreaterThanOrEqual(0);
        expect(d.delayMs).toBeLessThan(cap);
        expect(Number.isInteger(d.delayMs)).toBe(true);
      }
    },
  );

  it('is reproducible with the same seed', () => {
    const run = (seed: number) => {
      const rng = seededRng(seed);
      return Array.from({ length: 50 }, (_, i) => decide(fault('transient', 'x'), i + 1, rng));
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  it('honours a policy given as data', () => {
    const policy = parseFaultPolicy({ ...DEFAULT_FAULT_POLICY_INPUT, transient: { baseMs: 10, maxMs: 20, retryBudget: 2, holdAfterBudget: true } });
    expect(decide(fault('transient', 'x'), 1, always(0.99), policy)).toEqual({ action: 'retry', delayMs: 9 });
    expect(decide(fault('transient', 'x'), 2, always(0.99), policy).action).toBe('hold');
    // holdAfterBudget false: past the budget it keeps retrying.
    const lenient = parseFaultPolicy({ ...DEFAULT_FAULT_POLICY_INPUT, auth: { baseMs: 10, maxMs: 20, retryBudget: 1, holdAfterBudget: false } });
    expect(decide(fault('auth', 'x'), 5, always(0.5), lenient)).toEqual({ action: 'retry', delayMs: 10 });
  });
});

describe('parseFaultPolicy', () => {
  it.each([
    { name: 'unlimited as null', patch: { retryBudget: null }, budget: Number.POSITIVE_INFINITY },
    { name: 'unlimited as Infinity', patch: { retryBudget: Number.POSITIVE_INFINITY }, budget: Number.POSITIVE_INFINITY },
    { name: 'a finite budget', patch: { retryBudget: 7 }, budget: 7 },
  ])('accepts $name', ({ patch, budget }) => {
    const p = parseFaultPolicy({ ...DEFAULT_FAULT_POLICY_INPUT, unknown: { ...DEFAULT_FAULT_POLICY_INPUT.unknown, ...patch } });
    expect(p.unknown.retryBudget).toBe(budget);
    expect(Object.isFrozen(p)).toBe(true);
  });

  it.each([
    { name: 'negative base', input: { ...DEFAULT_FAULT_POLICY_INPUT, transient: { ...DEFAULT_FAULT_POLICY_INPUT.transient, baseMs: -1 } }, path: 'transient.baseMs' },
    { name: 'max below base', input: { ...DEFAULT_FAULT_POLICY_INPUT, permanent: { ...DEFAULT_FAULT_POLICY_INPUT.permanent, maxMs: 10 } }, path: 'permanent.maxMs' },
    { name: 'zero budget', input: { ...DEFAULT_FAULT_POLICY_INPUT, auth: { ...DEFAULT_FAULT_POLICY_INPUT.auth, retryBudget: 0 } }, path: 'auth.retryBudget' },
    { name: 'a class missing', input: { ...DEFAULT_FAULT_POLICY_INPUT, throttled: undefined }, path: 'throttled' },
    { name: 'an unknown class', input: { ...DEFAULT_FAULT_POLICY_INPUT, flaky: DEFAULT_FAULT_POLICY_INPUT.transient }, path: '(root)' },
    { name: 'a typo in a field', input: { ...DEFAULT_FAULT_POLICY_INPUT, unknown: { ...DEFAULT_FAULT_POLICY_INPUT.unknown, holdAfterBudjet: true } }, path: 'unknown' },
    { name: 'a string for a number', input: { ...DEFAULT_FAULT_POLICY_INPUT, transient: { ...DEFAULT_FAULT_POLICY_INPUT.transient, maxMs: '5m' } }, path: 'transient.maxMs' },
  ])('rejects $name, naming the path', ({ input, path }) => {
    let err: unknown;
    try {
      parseFaultPolicy(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DesiredStateError);
    expect((err as DesiredStateError).code).toBe(ErrorCodes.InvalidPolicy);
    expect((err as DesiredStateError).message).toContain(`${path}:`);
  });
});

describe('CircuitBreaker', () => {
  const failure = fault('transient', 'timeout');

  it('opens after K consecutive failures, probes after the cool-down, closes on success', () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker({ clock });
    for (let i = 0; i < 4; i++) {
      expect(b.acquire()).toEqual({ verdict: 'allow' });
      b.recordFailure(failure);
    }
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 4 });
    b.recordFailure(failure);
    expect(b.state).toEqual({ state: 'open', openedAt: 0, probeAt: 30_000 });
    expect(b.acquire()).toEqual({ verdict: 'reject', retryAt: 30_000 });
    clock.advance(29_999);
    expect(b.acquire().verdict).toBe('reject');
    clock.advance(1);
    expect(b.acquire()).toEqual({ verdict: 'probe' });
    // Only one probe at a time.
    expect(b.acquire()).toEqual({ verdict: 'reject', retryAt: 31_000 });
    b.recordSuccess();
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 0 });
    expect(b.acquire()).toEqual({ verdict: 'allow' });
  });

  it('a probe given back leaves the circuit open with its probe due now, for the next caller; outside half-open it does nothing', () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker({ clock });
    b.cancelProbe();
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 0 });
    for (let i = 0; i < 5; i++) b.recordFailure(failure);
    clock.advance(30_000);
    expect(b.acquire()).toEqual({ verdict: 'probe' });
    clock.advance(10);
    b.cancelProbe();
    expect(b.state).toEqual({ state: 'open', openedAt: 30_010, probeAt: 30_010 });
    expect(b.acquire()).toEqual({ verdict: 'probe' });
  });

  it.each([
    { name: 'a failed probe re-opens for a full cool-down', outcome: 'failure' as const, expected: { state: 'open', openedAt: 30_000, probeAt: 60_000 } },
    { name: 'a successful probe closes', outcome: 'success' as const, expected: { state: 'closed', consecutiveFailures: 0 } },
    { name: 'a permanent fault on the probe proves the backend answers: closes', outcome: 'permanent' as const, expected: { state: 'closed', consecutiveFailures: 0 } },
  ])('half-open: $name', ({ outcome, expected }) => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker({ clock, config: parseCircuitBreakerConfig({ failureThreshold: 1 }) });
    b.recordFailure(failure);
    clock.advance(30_000);
    expect(b.acquire().verdict).toBe('probe');
    if (outcome === 'failure') b.recordFailure(failure);
    else if (outcome === 'success') b.recordSuccess();
    else b.recordFailure(fault('permanent', 'bad spec'));
    expect(b.state).toEqual(expected);
  });

  it('a success resets the consecutive count', () => {
    const b = new CircuitBreaker({ clock: new FakeClock(0) });
    for (let i = 0; i < 4; i++) b.recordFailure(failure);
    b.recordSuccess();
    for (let i = 0; i < 4; i++) b.recordFailure(failure);
    expect(b.state.state).toBe('closed');
  });

  it('counts a failure once a caller until the backend answers: one node failing again and again never opens the circuit, five nodes do', () => {
    const b = new CircuitBreaker({ clock: new FakeClock(0) });
    for (let i = 0; i < 20; i++) b.recordFailure(failure, 'n1');
    for (const id of ['n2', 'n3', 'n4']) b.recordFailure(failure, id);
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 4 });
    // A success starts the count over, for the same nodes too.
    b.recordSuccess();
    for (const id of ['n1', 'n2', 'n3', 'n4']) b.recordFailure(failure, id);
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 4 });
    expect(b.recordFailure(failure, 'n5')).toBe('opened');
    // Once open and probed, the count starts over: a failed probe by a node counted before re-opens it.
    const clock = new FakeClock(0);
    const c = new CircuitBreaker({ clock, config: parseCircuitBreakerConfig({ failureThreshold: 2 }) });
    c.recordFailure(failure, 'a');
    c.recordFailure(failure, 'b');
    clock.advance(30_000);
    expect(c.acquire().verdict).toBe('probe');
    expect(c.recordFailure(failure, 'a')).toBe('opened');
  });

  // Six nodes referring to an output their producer never printed opened the exec backend's circuit,
  // though none of them called it, and an unrelated node's repair waited out the cool-down.
  it('a fault raised before the backend was called (notTheBackend: before-call) counts neither way, and gives back a probe it was let through on', () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker({ clock });
    const waiting = fault('transient', 'waiting for outputs producer.name', { code: 'outputs-missing', notTheBackend: 'before-call' });
    for (const id of ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']) expect(b.recordFailure(waiting, id)).toBeUndefined();
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 0 });
    // Nor does it close a circuit the backend's own failures opened: it says nothing of the backend.
    for (const id of ['n1', 'n2', 'n3', 'n4', 'n5']) b.recordFailure(failure, id);
    expect(b.state).toEqual({ state: 'open', openedAt: 0, probeAt: 30_000 });
    expect(b.recordFailure(waiting, 'n6')).toBeUndefined();
    expect(b.state.state).toBe('open');
    clock.advance(30_000);
    expect(b.acquire()).toEqual({ verdict: 'probe' });
    b.recordFailure(waiting, 'n6');
    expect(b.state).toEqual({ state: 'open', openedAt: 30_000, probeAt: 30_000 });
    expect(b.acquire()).toEqual({ verdict: 'probe' });
  });

  // Six files under a subdirectory someone replaced with a symlink out of the root each failed, transient,
  // and opened the local backend's circuit: every other file of it waited for probes.
  it("a fault about the node's own resource alone (notTheBackend: node-only) counts neither way either, whatever its class", () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker({ clock });
    const changed = fault('transient', 'path srv/sub/f.txt leads out of the backend root', { code: 'path-changed', notTheBackend: 'node-only' });
    for (const id of ['n1', 'n2', 'n3', 'n4', 'n5', 'n6']) expect(b.recordFailure(changed, id)).toBeUndefined();
    expect(b.state).toEqual({ state: 'closed', consecutiveFailures: 0 });
    // Nor does it break a streak of the backend's own failures.
    for (const id of ['n1', 'n2', 'n3', 'n4']) b.recordFailure(failure, id);
    b.recordFailure(changed, 'n7');
    expect(b.recordFailure(failure, 'n5')).toBe('opened');
  });

  it('lets a new probe through when the previous one never reported', () => {
    const clock = new FakeClock(0);
    const b = new CircuitBreaker({ clock, config: parseCircuitBreakerConfig({ failureThreshold: 1 }) });
    b.recordFailure(failure);
    clock.advance(30_000);
    expect(b.acquire().verdict).toBe('probe');
    clock.advance(30_000);
    expect(b.acquire().verdict).toBe('probe');
  });

  it('keeps one breaker per backend', () => {
    const breakers = new CircuitBreakers({ clock: new FakeClock(0), config: parseCircuitBreakerConfig({ failureThreshold: 1 }) });
    breakers.for('pg').recordFailure(failure);
    expect(breakers.for('pg').acquire().verdict).toBe('reject');
    expect(breakers.for('local').acquire().verdict).toBe('allow');
    expect([...breakers.states().keys()]).toEqual(['pg', 'local']);
  });

  it.each([
    { name: 'zero threshold', input: { failureThreshold: 0 }, path: 'failureThreshold' },
    { name: 'negative cool-down', input: { coolDownMs: -5 }, path: 'coolDownMs' },
    { name: 'unknown class', input: { countedClasses: ['flaky'] }, path: 'countedClasses[0]' },
    { name: 'unknown field', input: { cooldown: 5 }, path: '(root)' },
  ])('rejects config with $name', ({ input, path }) => {
    expect(() => parseCircuitBreakerConfig(input)).toThrow(expect.objectContaining({ code: ErrorCodes.InvalidPolicy, message: expect.stringContaining(`${path}:`) }));
  });

  it('completes partial config from the defaults', () => {
    expect(parseCircuitBreakerConfig({ coolDownMs: 5000 })).toEqual({ ...DEFAULT_CIRCUIT_BREAKER, coolDownMs: 5000 });
  });
});

describe('decide + CircuitBreaker, property', () => {
  const faultArb: fc.Arbitrary<Fault> = fc.record({
    class: fc.constantFrom<FaultClass>(...FAULT_CLASSES),
    message: fc.constant('x'),
    retryAfterMs: fc.option(fc.oneof(fc.integer({ min: -1000, max: 10_000_000 }), fc.constant(Number.NaN), fc.double()), { nil: undefined }),
  });
  const stepArb = fc.record({ outcome: fc.oneof(faultArb, fc.constant('ok' as const)), elapsedMs: fc.integer({ min: 0, max: 120_000 }) });

  /** A little reconciler for one node: the next delay from the policy and the breaker. */
  function simulate(steps: readonly { outcome: Fault | 'ok'; elapsedMs: number }[], seed: number): (FaultDecision | { action: 'wait'; delayMs: number })[] {
    const clock = new FakeClock(0);
    const rng = seededRng(seed);
    const breaker = new CircuitBreaker({ clock });
    let attempts = 0;
    const out: (FaultDecision | { action: 'wait'; delayMs: number })[] = [];
    for (const step of steps) {
      clock.advance(step.elapsedMs);
      const permit = breaker.acquire();
      if (permit.verdict === 'reject') {
        out.push({ action: 'wait', delayMs: permit.retryAt - clock.now() });
        continue;
      }
      if (step.outcome === 'ok') {
        breaker.recordSuccess();
        attempts = 0;
        continue;
      }
      breaker.recordFailure(step.outcome);
      attempts++;
      out.push(decide(step.outcome, attempts, rng));
    }
    return out;
  }

  it('never yields a negative or NaN delay, and is deterministic for a seed', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { maxLength: 60 }), fc.integer(), (steps, seed) => {
        const a = simulate(steps, seed);
        for (const d of a) {
          if (d.action === 'hold') continue;
          expect(Number.isFinite(d.delayMs)).toBe(true);
          expect(d.delayMs).toBeGreaterThanOrEqual(0);
        }
        expect(simulate(steps, seed)).toEqual(a);
      }),
      { numRuns: 300 },
    );
  });
});
