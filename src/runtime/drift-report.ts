import type { Logger } from 'pino';
import { fault } from './fault.ts';
import type { Fault } from './fault.ts';
import { correctsDrift, reportOnlyReason } from './node-spec.ts';
import type { DesiredNode, NodeSettings, NodeSpec } from './node-spec.ts';
import type { FieldDiff } from './provisioner.ts';
import type { DriftAction, DriftReport, NodeStatus } from './state-store.ts';

/**
 * The one field diff of a resource that was applied at the node's current
 * spec and is gone: deleted out of band. It is drift like any other (a
 * report, then a re-create, or only the report under `selfHeal: false`),
 * not a first create. `ignoreFields` does not apply to it.
 */
export const MISSING_RESOURCE: FieldDiff = { path: 'exists', desired: true, actual: false };

/** Whether `diffs` say the resource is gone (`MISSING_RESOURCE`). */
export function isMissing(diffs: readonly FieldDiff[]): boolean {
  return diffs.length === 1 && diffs[0]?.path === MISSING_RESOURCE.path;
}

/** Whether `d` is a change of the desired state that the backend noticed (`FieldDiff.cause`): applied, never drift. */
export function isDesiredChange(d: FieldDiff): boolean {
  return d.cause !== undefined;
}

/**
 * The diffs of a node applied at its current spec, split: `changes` of the
 * desired state (a rotated secret), applied as a goal change is, whatever
 * `selfHeal` says, neither reported as drift nor counted as a flap; and
 * `drift`, reported and corrected as drift is.
 */
export function splitDrift(diffs: readonly FieldDiff[]): { readonly changes: FieldDiff[]; readonly drift: FieldDiff[] } {
  return { changes: diffs.filter(isDesiredChange), drift: diffs.filter((d) => !isDesiredChange(d)) };
}

/** The stable line of desired changes about to be applied: the fields and why, never a value (a secret's least of all). */
export function logDesiredChanges(log: Logger, changes: readonly FieldDiff[]): void {
  if (changes.length > 0) log.info({ fields: changes.map((d) => d.path), cause: 'secret-rotated' }, 'secret rotated; applying');
}

/**
 * Whether drift of these `diffs` is corrected: a deleted resource is made again under selfHeal (a
 * create), other drift only where the backend can also update it (`correctsDrift`) and some of it can
 * be corrected at all (`FieldDiff.cannotCorrect`).
 */
export function corrected(settings: NodeSettings, diffs: readonly FieldDiff[]): boolean {
  return isMissing(diffs) ? settings.selfHeal : correctsDrift(settings) && diffs.some((d) => d.cannotCorrect === undefined);
}

/**
 * Whether a node left with this drift keeps its dependents waiting (blocked) until it is gone: where the
 * backend says the resource cannot serve them meanwhile (`FieldDiff.blocksDependents`: a symlink where a
 * managed directory should be). `left` is the drift that stands once the node is done with (`driftLeft`):
 * drift about to be corrected blocks nothing. The one rule of the daemon, `plan` and `apply`.
 */
export function driftBlocksDependents(left: readonly FieldDiff[]): boolean {
  return left.some((d) => d.blocksDependents === true);
}

/**
 * The drift that stands once a node applied at its spec is done with: all of `drift` where it is left as
 * it is (`correctedNow` false: only reported, or waiting for a flap's backoff), else what no update can
 * correct (`FieldDiff.cannotCorrect`), which an update leaves.
 */
export function driftLeft(drift: readonly FieldDiff[], correctedNow: boolean): readonly FieldDiff[] {
  return correctedNow ? uncorrectable(drift) : drift;
}

/** Why drift of these `diffs` is only reported (see `corrected`). */
export function reportOnly(settings: NodeSettings, diffs: readonly FieldDiff[]): string {
  if (isMissing(diffs)) return 'selfHeal: false';
  return correctsDrift(settings) ? (uncorrectable(diffs)[0]?.cannotCorrect ?? reportOnlyReason(settings)) : reportOnlyReason(settings);
}

/** The diffs no update can correct (`FieldDiff.cannotCorrect`). */
export function uncorrectable(diffs: readonly FieldDiff[]): FieldDiff[] {
  return diffs.filter((d) => d.cannotCorrect !== undefined);
}

/**
 * The fault of a goal (a new node, a changed one, a resource adopted) that asks for what no update can
 * make (`FieldDiff.cannotCorrect`): permanent, naming the field; undefined when every diff can be made.
 */
export function uncorrectableFault(diffs: readonly FieldDiff[]): Fault | undefined {
  const d = uncorrectable(diffs)[0];
  if (d === undefined) return undefined;
  const shown = (v: unknown): string => JSON.stringify(v) ?? String(v);
  return fault('permanent', `${d.path} is ${shown(d.actual)}, not ${shown(d.desired)}, and no update can change it: ${d.cannotCorrect!}`, { code: 'cannot-correct' });
}

/**
 * A drift occurrence reported and not over yet: the daemon keeps it in memory; `apply`, and a daemon
 * started over a drifted node, read it back from the node's last stored report (`outstandingDrift`).
 */
export interface ReportedDrift {
  /** Key of the drift last reported (fields and actual values: `driftKey`), to report each drift once. */
  lastKey: string;
  /** The fields of that drift, without their values (`driftPaths`). */
  lastPaths: string;
  /** When it was reported (epoch ms). */
  lastReportAt: number;
  firstSeen: number;
  /** Whether the occurrence is a flap. */
  flapping: boolean;
  /** The action its last report stored. */
  action: DriftAction;
}

/** The key of a drift: its fields and their actual values. */
export function driftKey(diffs: readonly FieldDiff[]): string {
  return JSON.stringify(diffs.map((d) => [d.path, d.actual]));
}

/** The fields of a drift, without their values. */
export function driftPaths(diffs: readonly FieldDiff[]): string {
  return JSON.stringify(diffs.map((d) => d.path));
}

/**
 * A drift left as it is (only reported, or waiting for a flap's backoff) still outstanding when the last
 * run left the node (its record says `drifted`), as of the node's last stored report (`lastReport`, read
 * only then) when that report is of the same fields: a restarted daemon, or the next `apply`, neither
 * reports it again nor forgets when it was first seen. Undefined otherwise: `diffs` are a new occurrence.
 */
export function outstandingDrift(status: NodeStatus | undefined, lastReport: () => DriftReport | undefined, diffs: readonly FieldDiff[]): ReportedDrift | undefined {
  if (status !== 'drifted') return undefined;
  const last = lastReport();
  if (last?.action !== 'reported' || driftPaths(last.diffs) !== driftPaths(diffs)) return undefined;
  return { lastKey: driftKey(last.diffs), lastPaths: driftPaths(last.diffs), lastReportAt: last.detectedAt, firstSeen: last.firstSeen, flapping: last.flapping, action: last.action };
}

/**
 * Whether drift `diffs` seen `now` is the outstanding occurrence `o`, reported already: the same values, or,
 * while the same fields keep changing value (a counter, a timestamp), a flapping occurrence until its
 * correction and a report-only one (never corrected) for an interval, after which the new values are
 * reported again. Otherwise the log and the drift table would grow with every write of the other party.
 */
export function reportedAlready(o: ReportedDrift, diffs: readonly FieldDiff[], now: number, settings: NodeSettings, intervalMs: number): boolean {
  if (driftKey(diffs) === o.lastKey) return true;
  if (driftPaths(diffs) !== o.lastPaths) return false;
  return o.flapping || (!corrected(settings, diffs) && now - o.lastReportAt < (settings.intervalMs ?? intervalMs));
}

/**
 * The action the last report of a drift takes once its correction is done (`succeeded`) or failed, where
 * it says otherwise: stored `corrected` before the correction ran, or `reported` until `selfHeal` was
 * switched on or a flap's backoff was over. Undefined when it says so already, and where `selfHeal` is
 * off: the operation that ran was a goal change applied over the drift (a rotated secret), not its
 * correction, and the report stays `reported`.
 */
export function settledAction(stored: DriftAction, succeeded: boolean, selfHeal: boolean): DriftAction | undefined {
  if (!selfHeal) return undefined;
  const action: DriftAction = succeeded ? 'corrected' : 'correction-failed';
  return action === stored ? undefined : action;
}

/**
 * The report of one drift occurrence of `node`, detected `at` (epoch ms): `corrected` where the correction
 * runs now, stored before it runs (`settledAction` then says what it came to); `reported` where it is left
 * as it is, and where it waits for a flap's backoff (`waitsForBackoff`): until it runs, nothing is corrected,
 * and a correction dropped meanwhile (`selfHeal` switched off, the field ignored) leaves the report true.
 */
export function driftReport<S extends NodeSpec>(
  node: DesiredNode<S>,
  diffs: readonly FieldDiff[],
  at: number,
  occurrence: { readonly firstSeen: number; readonly flapping: boolean; readonly commit: string | null; readonly waitsForBackoff?: boolean },
): DriftReport {
  // A deleted resource is made again under selfHeal (a create); other drift only where the backend can update.
  const action: DriftAction = corrected(node.settings, diffs) && occurrence.waitsForBackoff !== true ? 'corrected' : 'reported';
  return { goal: node.goal, node: node.id, backendId: node.spec.backendId, diffs, firstSeen: occurrence.firstSeen, detectedAt: at, action, flapping: occurrence.flapping, commit: occurrence.commit };
}

/**
 * The stable `drift detected` log line of a report, the same from the daemon
 * and from a one-shot `apply`: `log` carries the node and backend, the line
 * the goal, the field diffs (secrets already masked by the backend), when
 * the occurrence was first seen, the action, whether it flaps, and the goals'
 * commit.
 */
export function logDrift(log: Logger, r: DriftReport): void {
  log.warn({ goal: r.goal, diffs: r.diffs, firstSeen: new Date(r.firstSeen).toISOString(), action: r.action, flapping: r.flapping, commit: r.commit }, 'drift detected');
}
