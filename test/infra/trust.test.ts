import { describe, expect, it } from 'vitest';
import { betaQuantile, DEFAULT_TRUST_POLICY, estimateTrust, gateLabel, logGamma, regularizedBeta, standingOf, trustPolicySchema } from '../../src/infra/index.ts';

/** Independent reference: the Beta CDF by composite Simpson integration of the density (a, b >= 1: smooth). */
function cdfByIntegration(x: number, a: number, b: number, n = 20_000): number {
  const f = (t: number): number => t ** (a - 1) * (1 - t) ** (b - 1);
  const simpson = (lo: number, hi: number): number => {
    const h = (hi - lo) / n;
    let sum = f(lo) + f(hi);
    for (let i = 1; i < n; i++) sum += (i % 2 === 1 ? 4 : 2) * f(lo + i * h);
    return (sum * h) / 3;
  };
  return simpson(0, x) / simpson(0, 1);
}

describe('logGamma', () => {
  it.each([
    { x: 1, want: 0, reason: 'Γ(1) = 1' },
    { x: 5, want: Math.log(24), reason: 'Γ(5) = 4!' },
    { x: 0.5, want: 0.5 * Math.log(Math.PI), reason: 'Γ(1/2) = √π (reflection branch)' },
    { x: 51, want: Array.from({ length: 50 }, (_, i) => Math.log(i + 1)).reduce((s, v) => s + v, 0), reason: 'Γ(51) = 50!' },
  ])('$reason', ({ x, want }) => {
    expect(logGamma(x)).toBeCloseTo(want, 10);
  });
});

describe('the Beta quantile', () => {
  it.each([
    { p: 0.05, a: 1, b: 1, want: 0.05, reason: 'Beta(1,1) is uniform' },
    { p: 0.05, a: 51, b: 1, want: 0.05 ** (1 / 51), reason: 'Beta(n,1) has CDF x^n: 50 straight successes' },
    { p: 0.5, a: 2, b: 2, want: 0.5, reason: 'Beta(2,2) is symmetric: median 1/2' },
    { p: 0.05, a: 1, b: 3, want: 1 - 0.95 ** (1 / 3), reason: 'Beta(1,n) has CDF 1 - (1-x)^n' },
    // scipy.stats.beta.ppf(0.05, 10, 2) = 0.6356405107527575 (not 0.6632, a figure once quoted from memory).
    { p: 0.05, a: 10, b: 2, want: 0.6356405107527575, reason: 'scipy reference for Beta(10,2)' },
  ])('$reason', ({ p, a, b, want }) => {
    expect(betaQuantile(p, a, b)).toBeCloseTo(want, 9);
  });

  it.each([
    { a: 10, b: 2 },
    { a: 3.5, b: 7 },
    { a: 49, b: 2 },
    { a: 1, b: 1 },
    { a: 2, b: 30 },
  ])('agrees with numerical integration for Beta($a,$b)', ({ a, b }) => {
    for (const x of [0.1, 0.3, 0.5, 0.7, 0.9, 0.97]) expect(regularizedBeta(x, a, b)).toBeCloseTo(cdfByIntegration(x, a, b), 7);
    for (const p of [0.01, 0.05, 0.5, 0.95]) expect(cdfByIntegration(betaQuantile(p, a, b), a, b)).toBeCloseTo(p, 7);
  });

  it('is monotone in p and stays inside [0, 1]', () => {
    let last = -1;
    for (let p = 0; p <= 1.0000001; p += 0.05) {
      const q = betaQuantile(Math.min(p, 1), 7, 3);
      expect(q).toBeGreaterThanOrEqual(last);
      expect(q).toBeGreaterThanOrEqual(0);
      expect(q).toBeLessThanOrEqual(1);
      last = q;
    }
  });

  it('refuses nonsense parameters with a RangeError', () => {
    expect(() => betaQuantile(1.5, 1, 1)).toThrow(RangeError);
    expect(() => regularizedBeta(0.5, 0, 1)).toThrow(RangeError);
  });
});

describe('trust and standing', () => {
  it('the default bar (0.94 at the 5th percentile) is first reached after 48 straight successes', () => {
    expect(estimateTrust({ successes: 47, failures: 0 }).trusted).toBe(false);
    expect(estimateTrust({ successes: 48, failures: 0 }).trusted).toBe(true);
    expect(estimateTrust({ successes: 50, failures: 0 }).lower).toBeCloseTo(0.05 ** (1 / 51), 12);
  });

  it('one failure after 48 successes re-gates; it takes many more successes to climb back', () => {
    expect(estimateTrust({ successes: 48, failures: 1 }).trusted).toBe(false);
    let n = 48;
    while (!estimateTrust({ successes: n, failures: 1 }).trusted) n++;
    expect(n).toBeGreaterThan(70);
  });

  const approved = { verdict: 'approved' as const, by: 'ana', at: 0, note: null };
  it.each([
    { name: 'no verdict: unreviewed whatever the record', verdict: undefined, tally: { successes: 100, failures: 0 }, want: 'unreviewed', label: 'unreviewed' },
    { name: 'rejected stays rejected whatever the record', verdict: { ...approved, verdict: 'rejected' as const }, tally: { successes: 100, failures: 0 }, want: 'rejected', label: 'rejected' },
    { name: 'approved, young: probation', verdict: approved, tally: { successes: 3, failures: 0 }, want: 'probation', label: 'needs-approval' },
    { name: 'approved, proven: trusted', verdict: approved, tally: { successes: 60, failures: 0 }, want: 'trusted', label: 'runs-alone' },
  ])('$name', ({ verdict, tally, want, label }) => {
    const s = standingOf(verdict, tally);
    expect(s.standing).toBe(want);
    expect(gateLabel(s)).toBe(label);
  });

  it('validates a policy once: bar and quantile within (0, 1)', () => {
    expect(trustPolicySchema.parse({})).toEqual(DEFAULT_TRUST_POLICY);
    expect(trustPolicySchema.safeParse({ bar: 1 }).success).toBe(false);
    expect(trustPolicySchema.safeParse({ quantile: 0.7 }).success).toBe(false);
  });
});
