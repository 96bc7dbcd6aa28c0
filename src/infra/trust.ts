import { z } from 'zod';
import { assertNever } from '../runtime/index.ts';

/**
 * Bayesian trust in a generated artifact (a provisioning script): each counted
 * run is a Bernoulli trial, the prior is uniform, so the posterior of its
 * success probability is Beta(1 + successes, 1 + failures). A script is
 * trusted when a low quantile of that posterior (default the 5th percentile)
 * clears a bar (default 0.94): "we are 95 % sure it succeeds at least 94 % of
 * the time". With no failures the 5th percentile of Beta(n + 1, 1) is
 * 0.05^(1/(n+1)), which first reaches 0.94 at n = 48 straight successes.
 *
 * The special functions are implemented here (Lanczos log-gamma, the
 * regularized incomplete beta by its continued fraction with Lentz's method,
 * and its inverse by bisection): about sixty lines, exact to ~1e-12 over the
 * parameters that occur, with no dependency to audit.
 */

/** Where the bar sits and which quantile must clear it. Data, validated once at load. */
export interface TrustPolicy {
  /** The lower posterior quantile must be at least this for a script to run on its own. */
  readonly bar: number;
  /** Which quantile: 0.05 is the 5th percentile. */
  readonly quantile: number;
}

export const trustPolicySchema = z.strictObject({
  bar: z.number().gt(0).lt(1).default(0.94).describe('The posterior quantile a script must reach to run without a per-run approval (default 0.94: 48 straight successes).'),
  quantile: z.number().gt(0).lt(0.5).default(0.05).describe('Which lower quantile of Beta(1 + successes, 1 + failures) is compared with the bar (default 0.05, the 5th percentile).'),
});

export const DEFAULT_TRUST_POLICY: TrustPolicy = Object.freeze({ bar: 0.94, quantile: 0.05 });

/** Counted runs of one script. */
export interface RunTally {
  readonly successes: number;
  readonly failures: number;
}

/** The posterior Beta(alpha, beta) and the figures the gate and `scripts trust` show. */
export interface TrustEstimate {
  readonly alpha: number;
  readonly beta: number;
  /** Posterior mean alpha / (alpha + beta). */
  readonly mean: number;
  /** The policy's lower quantile of the posterior. */
  readonly lower: number;
  /** `lower >= bar`. */
  readonly trusted: boolean;
}

/** The posterior of a tally under a policy. */
export function estimateTrust(tally: RunTally, policy: TrustPolicy = DEFAULT_TRUST_POLICY): TrustEstimate {
  const alpha = 1 + tally.successes;
  const beta = 1 + tally.failures;
  const lower = betaQuantile(policy.quantile, alpha, beta);
  return { alpha, beta, mean: alpha / (alpha + beta), lower, trusted: lower >= policy.bar };
}

/** A human verdict on a script. */
export interface ScriptVerdict {
  readonly verdict: 'approved' | 'rejected';
  readonly by: string;
  readonly at: number;
  readonly note: string | null;
}

/**
 * Where a script stands, environment aside. `probation`: approved, below the
 * bar (runs alone only where the environment does not require approval);
 * `trusted`: approved and above the bar (runs alone everywhere).
 */
export type ScriptStanding =
  | { readonly standing: 'unreviewed'; readonly trust: TrustEstimate }
  | { readonly standing: 'rejected'; readonly verdict: ScriptVerdict; readonly trust: TrustEstimate }
  | { readonly standing: 'probation'; readonly verdict: ScriptVerdict; readonly trust: TrustEstimate }
  | { readonly standing: 'trusted'; readonly verdict: ScriptVerdict; readonly trust: TrustEstimate };

/** The standing of a script from its latest verdict and its counted runs. */
export function standingOf(latest: ScriptVerdict | undefined, tally: RunTally, policy: TrustPolicy = DEFAULT_TRUST_POLICY): ScriptStanding {
  const trust = estimateTrust(tally, policy);
  if (latest === undefined) return { standing: 'unreviewed', trust };
  switch (latest.verdict) {
    case 'rejected':
      return { standing: 'rejected', verdict: latest, trust };
    case 'approved':
      return trust.trusted ? { standing: 'trusted', verdict: latest, trust } : { standing: 'probation', verdict: latest, trust };
    default:
      return assertNever(latest.verdict, 'verdict');
  }
}

/** The gate as `scripts trust` names it. */
export type GateLabel = 'runs-alone' | 'needs-approval' | 'unreviewed' | 'rejected';

export function gateLabel(s: ScriptStanding): GateLabel {
  switch (s.standing) {
    case 'unreviewed':
      return 'unreviewed';
    case 'rejected':
      return 'rejected';
    case 'probation':
      return 'needs-approval';
    case 'trusted':
      return 'runs-alone';
    default:
      return assertNever(s, 'standing');
  }
}

// ---------------------------------------------------------------------------
// Special functions

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7; relative error ~1e-15). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  // Reflection keeps the approximation in its accurate range.
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0]!;
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of I_x(a, b), evaluated by the modified Lentz method. */
function betaContinuedFraction(x: number, a: number, b: number): number {
  const TINY = 1e-300;
  const EPS = 1e-15;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    // Even step.
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    // Odd step.
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) return h;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b): the CDF of Beta(a, b) at x. */
export function regularizedBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new RangeError(`regularizedBeta needs a, b > 0, got ${a}, ${b}`);
  if (Number.isNaN(x)) return Number.NaN;
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  const front = Math.exp(lnFront);
  // The fraction converges fast for x < (a + 1) / (a + b + 2); use the symmetry otherwise.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

/**
 * The p-quantile of Beta(a, b): the x with I_x(a, b) = p. Bisection: the CDF
 * is monotone, so 100 halvings pin x to the last bit without Newton's
 * failure modes near 0 and 1.
 */
export function betaQuantile(p: number, a: number, b: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`betaQuantile needs 0 <= p <= 1, got ${p}`);
  if (p === 0) return 0;
  if (p === 1) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 100 && hi - lo > 1e-15; i++) {
    const mid = (lo + hi) / 2;
    if (regularizedBeta(mid, a, b) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
