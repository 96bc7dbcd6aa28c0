import type { ExecCommand, ScriptStanding, TrustPolicy } from '../../infra/index.ts';
import { assertNever } from '../../runtime/index.ts';

/**
 * Pure: whether a script may run for one verb in one environment.
 * `read` of a reviewed script always runs (a human has read it and it
 * changes nothing); create, update and delete are the trials that earn
 * trust and the runs that need a per-run approval below the bar.
 */

export type ScriptVerb = ExecCommand;

export type RunGate =
  | { readonly gate: 'open' }
  /** Runs only by consuming a per-run approval (`desiredstate scripts approve-run`). */
  | { readonly gate: 'approval'; readonly reason: string }
  | { readonly gate: 'closed'; readonly code: 'script-unreviewed' | 'script-rejected'; readonly reason: string };

export const shortHash = (hash: string): string => hash.slice(0, 12);

const fixed = (n: number): string => n.toFixed(4);

export function gateFor(
  standing: ScriptStanding,
  verb: ScriptVerb,
  context: { readonly hash: string; readonly node: string; readonly environment: string; readonly requireApprovalIn: readonly string[]; readonly policy: TrustPolicy },
): RunGate {
  const h = shortHash(context.hash);
  switch (standing.standing) {
    case 'unreviewed':
      return { gate: 'closed', code: 'script-unreviewed', reason: `script ${h} awaits review: desiredstate scripts show ${h}` };
    case 'rejected':
      return {
        gate: 'closed',
        code: 'script-rejected',
        reason: `script ${h} was rejected${standing.verdict.note === null ? '' : ` (${standing.verdict.note})`}; a new one is generated on the next pass`,
      };
    case 'trusted':
      return { gate: 'open' };
    case 'probation':
      if (verb === 'read' || !context.requireApprovalIn.includes(context.environment)) return { gate: 'open' };
      return {
        gate: 'approval',
        reason: `script ${h} needs a per-run approval to ${verb} ${context.node} in ${context.environment} (trust ${fixed(standing.trust.lower)} < ${context.policy.bar}): desiredstate scripts approve-run ${h} --node ${context.node}`,
      };
    default:
      return assertNever(standing, 'standing');
  }
}
