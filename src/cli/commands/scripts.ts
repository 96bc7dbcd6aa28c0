import { userInfo } from 'node:os';
import { allowlistedEnv, DEFAULT_TRUST_POLICY, gateLabel, SecretMask, standingOf } from '../../infra/index.ts';
import type { ScriptStanding, TrustPolicy } from '../../infra/index.ts';
import { artifactHash, DesiredStateError, ErrorCodes, suggestion } from '../../runtime/index.ts';
import type { ArtifactLedger, ArtifactRecord, CircuitStatus, NodeRecord, SqliteStateStore } from '../../runtime/index.ts';
import { compileGoals, optionalGoalsDir, withStateStore } from '../context.ts';
import type { CliContext } from '../context.ts';
import { isoTime, oneLine, table } from '../format.ts';
import { EXIT, UsageError } from '../usage.ts';
import { releasedLine, releaseInStore, releaseNode, runningDaemon } from './state.ts';

/**
 * `desiredstate scripts …`: review generated provisioning scripts and read
 * their trust. Works while the daemon runs (no lock; each write is one
 * transaction). Approving a script, or granting a run, releases the nodes
 * held waiting for it, the way `desiredstate retry` does.
 */

export const SCRIPT_SUBCOMMANDS = ['list', 'show', 'approve', 'reject', 'approve-run', 'trust'] as const;
export type ScriptSubcommand = (typeof SCRIPT_SUBCOMMANDS)[number];

/**
 * What each subcommand takes besides every command's options: a HASH argument or none, and which of
 * the options of `scripts` (the trust bar where it judges trust; the reviewer and a note where it records a verdict).
 */
const SUBCOMMAND_ARGUMENTS = {
  list: { hash: false, options: ['bar'] },
  trust: { hash: false, options: ['bar'] },
  show: { hash: true, options: ['bar'] },
  approve: { hash: true, options: ['note', 'by'] },
  reject: { hash: true, options: ['note', 'by'] },
  'approve-run': { hash: true, options: ['node', 'note', 'by', 'bar'] },
} as const satisfies Record<ScriptSubcommand, { readonly hash: boolean; readonly options: readonly string[] }>;

export interface ScriptsOptions {
  readonly hash?: string | undefined;
  readonly note?: string | undefined;
  readonly by?: string | undefined;
  readonly node?: string | undefined;
  readonly policy?: TrustPolicy | undefined;
}

const notFound = (message: string): DesiredStateError => new DesiredStateError(ErrorCodes.NotFound, message);
const refused = (message: string): DesiredStateError => new DesiredStateError(ErrorCodes.Refused, message);

const short = (hash: string): string => hash.slice(0, 12);

/** The hash prefix given: a UsageError when there is none or it cannot be one. */
function hashPrefix(prefix: string | undefined): string {
  if (prefix === undefined) throw new UsageError('a script hash (or a prefix of at least 6 characters) is required');
  if (!/^[0-9a-f]{6,64}$/.test(prefix)) throw new UsageError(`"${prefix}" is not a script hash (6 to 64 lowercase hex characters)`);
  return prefix;
}

function resolveHash(ledger: ArtifactLedger, given: string | undefined): ArtifactRecord {
  const prefix = hashPrefix(given);
  const found = ledger.findByPrefix(prefix);
  if (found.length === 0) throw notFound(`no script ${prefix}`);
  if (found.length > 1) throw notFound(`${prefix} matches ${found.length} scripts: ${found.map((a) => short(a.hash)).join(', ')}; give more characters`);
  return found[0]!;
}

/** Whether the stored text is the one its hash names (state.db may have been edited by hand). */
function intact(a: ArtifactRecord): boolean {
  return artifactHash(a.content) === a.hash;
}

function standing(ledger: ArtifactLedger, hash: string, policy: TrustPolicy): ScriptStanding {
  return standingOf(ledger.latestReview(hash), ledger.tally(hash), policy);
}

function summary(ledger: ArtifactLedger, a: ArtifactRecord, policy: TrustPolicy) {
  const s = standing(ledger, a.hash, policy);
  const tally = ledger.tally(a.hash);
  return {
    hash: a.hash,
    origin: a.origin,
    keys: a.keys,
    createdAt: a.createdAt,
    review: ledger.latestReview(a.hash) ?? null,
    successes: tally.successes,
    failures: tally.failures,
    mean: s.trust.mean,
    lower: s.trust.lower,
    gate: gateLabel(s),
  };
}

/** The nodes held waiting for this script (`only`: that one, if it is). */
function heldFor(store: SqliteStateStore, hash: string, only?: string): NodeRecord[] {
  // Failed too: a run refused when sent (its approval voided between the read before it and the run) is recorded failed, with the reason.
  return store.listNodes().filter((r) => (r.status === 'held' || r.status === 'failed') && r.reason?.includes(short(hash)) === true && (only === undefined || r.id === only));
}

/** A node released: how, and the open circuit of its backend that it waits for, if any. */
interface Released {
  readonly id: string;
  readonly via: 'daemon' | 'store';
  readonly circuit?: CircuitStatus | undefined;
}

/**
 * Releases `held` for the next pass: with a daemon serving this state, through it (it keeps node
 * state in memory, and reconciles them at once); otherwise in the store. Then reports, as `doc`
 * (JSON) or `head` and one line per node released.
 */
function releaseAndReport(ctx: CliContext, store: SqliteStateStore, held: readonly NodeRecord[], hash: string, report: { json: boolean; doc: Record<string, unknown>; head: string }): number | Promise<number> {
  const done = (released: readonly Released[]): number =>
    report.json ? print(ctx, { ...report.doc, released: released.map((r) => r.id) }) : lines(ctx, [report.head, ...released.map((r) => releasedLine(r.id, r.via, r.circuit))]);
  const daemon = runningDaemon(ctx, store);
  if (daemon === undefined) {
    if (held.length === 0) return done([]);
    const at = Date.now();
    try {
      // Holding the lock, as `retry` does: an apply running now keeps node records in memory and would write over the release.
      releaseInStore(ctx, null, undefined, (locked) =>
        locked.transaction(() => {
          for (const r of held) {
            locked.putNodes([{ ...r, status: 'pending', attempts: 0, retryAt: null, lastFault: null, reason: `released: script ${short(hash)} reviewed`, updatedAt: at }]);
            locked.appendEvent({ at, node: r.id, kind: 'operator-retry', data: { previous: r.status, script: hash } });
          }
        }),
      );
    } catch (err) {
      if (!(err instanceof DesiredStateError)) throw err;
      throw new DesiredStateError(err.code, `${report.head}; ${err.message}`, { cause: err, context: err.context });
    }
    return done(held.map((r) => ({ id: r.id, via: 'store' })));
  }
  // Asked once this command's own writes (the review, the grant) are committed, for the daemon's
  // script backend reads them; `store` is closed by then, and not read below.
  return (async () => {
    const released: Released[] = [];
    for (const r of held) {
      try {
        const { answer, via } = await releaseNode(ctx, r.id, daemon);
        if (answer.status === 'released') released.push({ id: r.id, via, circuit: answer.circuit });
      } catch (err) {
        // The daemon did not release it (refused, or no answer): what is recorded stays, and is said so.
        if (!(err instanceof DesiredStateError)) throw err;
        const done = released.length === 0 ? '' : ` (released ${released.map((x) => x.id).join(', ')})`;
        throw new DesiredStateError(err.code, `${report.head}${done}; ${r.id}: ${err.message}`, { cause: err, context: err.context });
      }
    }
    return done(released);
  })();
}

function reviewer(ctx: CliContext, by: string | undefined): string {
  if (by !== undefined && by !== '') return by;
  try {
    return ctx.env.USER ?? userInfo().username;
  } catch {
    return 'unknown';
  }
}

export async function scripts(ctx: CliContext, sub: string | undefined, options: ScriptsOptions): Promise<number> {
  if (sub === undefined) throw new UsageError(`scripts needs a subcommand: ${SCRIPT_SUBCOMMANDS.join(', ')}`);
  if (!(SCRIPT_SUBCOMMANDS as readonly string[]).includes(sub)) {
    throw new UsageError(`unknown subcommand "${sub}" of scripts; it has ${SCRIPT_SUBCOMMANDS.join(', ')}${suggestion(sub, SCRIPT_SUBCOMMANDS)}`);
  }
  // An argument or option the subcommand does not take is a bad invocation, as for every command, never ignored.
  const takes: { readonly hash: boolean; readonly options: readonly string[] } = SUBCOMMAND_ARGUMENTS[sub as ScriptSubcommand];
  if (!takes.hash && options.hash !== undefined) throw new UsageError(`unexpected argument "${options.hash}"`);
  const given = { note: options.note, by: options.by, node: options.node, bar: options.policy };
  for (const [option, value] of Object.entries(given)) {
    if (value !== undefined && !takes.options.includes(option)) throw new UsageError(`scripts ${sub} takes no --${option}`);
  }
  // The goals are read for the trust bar (when there are goals and --bar does not give it), which approve
  // and reject do not judge, and by show for the secrets its script may quote: a goal directory named that
  // is not there is a bad invocation where it is read.
  const judged = sub !== 'approve' && sub !== 'reject';
  const backends = judged && (options.policy === undefined || sub === 'show') && optionalGoalsDir(ctx) ? await scriptBackends(ctx) : undefined;
  const policy = options.policy ?? strictestTrust(backends ?? []) ?? DEFAULT_TRUST_POLICY;
  const json = ctx.format === 'json';
  const mode = sub === 'approve' || sub === 'reject' || sub === 'approve-run' ? 'write' : 'read';
  const result = withStateStore(ctx, mode, (store) => run(ctx, store, sub as ScriptSubcommand, options, policy, json, secretsOf(ctx, backends)));
  if (result !== undefined) return result;
  // No state yet: the lists are empty, in the shape they have once there is state; any hash is unknown.
  if (sub === 'list' || sub === 'trust') {
    if (json) return print(ctx, sub === 'trust' ? { bar: policy.bar, quantile: policy.quantile, scripts: [] } : { scripts: [] });
    return print(ctx, 'no scripts yet: they are generated when a script backend first observes a node');
  }
  throw notFound(`no script ${hashPrefix(options.hash)}`);
}

function run(ctx: CliContext, store: SqliteStateStore, sub: ScriptSubcommand, options: ScriptsOptions, policy: TrustPolicy, json: boolean, mask: SecretMask): number | Promise<number> {
  const ledger = store.artifacts;
  switch (sub) {
    case 'list': {
      const all = ledger.list().map((a) => summary(ledger, a, policy));
      if (json) return print(ctx, { scripts: all });
      if (all.length === 0) return print(ctx, 'no scripts yet');
      const rows = [['SCRIPT', 'KIND', 'SHAPE', 'ORIGIN', 'REVIEW', 'CREATED']];
      for (const s of all) {
        const review = s.review === null ? 'unreviewed' : `${s.review.verdict} by ${oneLine(s.review.by)}`;
        for (const k of s.keys) rows.push([short(s.hash), k.kind, k.shape, s.origin, review, isoTime(s.createdAt)]);
      }
      return lines(ctx, table(rows));
    }
    case 'show': {
      const a = resolveHash(ledger, options.hash);
      const s = summary(ledger, a, policy);
      const runs = ledger.runs(a.hash, 20);
      // A generated script may quote a secret of its backend's environment (a generator that wrote an API token in).
      const content = mask.text(a.content);
      // What approve-run would permit, read before it is given.
      const requests = ledger.requests(a.hash);
      if (json) return print(ctx, { ...s, content, reviews: ledger.reviews(a.hash), requests, grants: ledger.grants(a.hash), runs });
      const out = [
        `script ${a.hash}`,
        `origin   ${a.origin}`,
        ...a.keys.map((k) => `for      ${k.kind} ${k.shape}`),
        `created  ${isoTime(a.createdAt)}`,
        `review   ${s.review === null ? 'none' : `${s.review.verdict} by ${oneLine(s.review.by)} at ${isoTime(s.review.at)}${s.review.note === null ? '' : ` (${s.review.note})`}`}`,
        `trust    ${s.successes} successes, ${s.failures} failures; mean ${s.mean.toFixed(4)}, 5th percentile ${s.lower.toFixed(4)} (bar ${policy.bar}); gate ${s.gate}`,
        ...requests.map((r) => `waiting  ${r.subject} ${r.action} since ${isoTime(r.at)}, with input ${r.input}: desiredstate scripts approve-run ${short(a.hash)} --node ${r.subject}`),
        ...runs.map((r) => `run      ${isoTime(r.at)} ${r.subject} ${r.action} ${r.outcome}${r.exitCode === null ? '' : ` exit ${r.exitCode}`} ${r.durationMs}ms${r.grantId === null ? '' : ' (approved run)'}${r.detail === null ? '' : `: ${r.detail.split('\n')[0]}`}`),
        '',
        ...content.replace(/\n$/, '').split('\n'),
      ];
      if (!intact(a)) out.unshift(`WARNING: this text does not match the hash ${short(a.hash)}: it is not the script that was generated, and it will not run`);
      if (s.review === null) out.push('', `approve with: desiredstate scripts approve ${short(a.hash)}   (or reject with: desiredstate scripts reject ${short(a.hash)} --note WHY)`);
      return lines(ctx, out);
    }
    case 'approve':
    case 'reject': {
      const a = resolveHash(ledger, options.hash);
      const verdict = sub === 'approve' ? 'approved' : 'rejected';
      // A verdict is for the text with this hash; text that does not hash to it was never generated as it reads.
      if (verdict === 'approved' && !intact(a)) throw refused(`script ${short(a.hash)}: the stored text does not match its hash; it cannot be approved (reject it: the generator's text is stored again on the next pass, for a fresh review)`);
      const review = ledger.review(a.hash, verdict, reviewer(ctx, options.by), options.note ?? null);
      store.appendEvent({ at: review.at, node: null, kind: `script-${verdict}`, data: { script: a.hash, by: review.by, note: review.note } });
      // Approval releases held nodes; so does rejection: the next pass generates a new script.
      const held = heldFor(store, a.hash);
      ctx.log.info({ script: a.hash, verdict, by: review.by, held: held.map((r) => r.id) }, 'script reviewed');
      return releaseAndReport(ctx, store, held, a.hash, { json, doc: { review }, head: `script ${short(a.hash)} ${verdict} by ${oneLine(review.by)}` });
    }
    case 'approve-run': {
      const a = resolveHash(ledger, options.hash);
      if (options.node === undefined || options.node === '') throw new UsageError('approve-run needs --node ID');
      const s = standing(ledger, a.hash, policy);
      if (s.standing === 'unreviewed' || s.standing === 'rejected') {
        throw refused(`script ${short(a.hash)} is ${s.standing}: review it first (desiredstate scripts approve ${short(a.hash)})`);
      }
      // A mistyped --node granted a run to no node, said it was approved, and left the node held; the grant
      // then waited for whichever node would one day take that id.
      const rec = store.getNode(options.node);
      if (rec === undefined) {
        throw notFound(`no node ${options.node} in the state: a per-run approval is for a node a pass has held (its reason names the command)`);
      }
      // A grant answers the run a pass held for it, and permits that verb with that input only: given for a node
      // that waited for nothing, it stayed open and was taken, unasked, by whatever change came next, days later.
      // Read and answered in one write transaction: approve-runs at once grant one run, not one each.
      const grant = ledger.grant(a.hash, options.node, reviewer(ctx, options.by), options.note ?? null);
      if (grant === undefined) {
        throw refused(
          `${options.node} is not waiting for a per-run approval of script ${short(a.hash)} (it is ${rec.status}): nothing to approve; approve-run answers a run a pass has held, whose reason names this command`,
        );
      }
      store.appendEvent({ at: grant.at, node: options.node, kind: 'script-run-approved', data: { script: a.hash, by: grant.by, grant: grant.id, action: grant.action } });
      return releaseAndReport(ctx, store, heldFor(store, a.hash, options.node), a.hash, {
        json,
        doc: { grant },
        head: `one ${grant.action} of ${options.node} by script ${short(a.hash)} approved by ${oneLine(grant.by)}, with input ${grant.input}`,
      });
    }
    case 'trust': {
      const all = ledger.list().map((a) => summary(ledger, a, policy));
      if (json) return print(ctx, { bar: policy.bar, quantile: policy.quantile, scripts: all });
      if (all.length === 0) return print(ctx, 'no scripts yet');
      const rows = [['SCRIPT', 'KIND', 'SUCCESSES', 'FAILURES', 'MEAN', `P${Math.round(policy.quantile * 100)}`, 'GATE']];
      for (const s of all) rows.push([short(s.hash), [...new Set(s.keys.map((k) => k.kind))].join(','), String(s.successes), String(s.failures), s.mean.toFixed(4), s.lower.toFixed(4), s.gate]);
      return lines(ctx, [...table(rows), '', `bar: P${Math.round(policy.quantile * 100)} of Beta(1 + successes, 1 + failures) >= ${policy.bar}; needs-approval applies in the environments a backend lists in requireApprovalBelowTrust`]);
    }
  }
}

function print(ctx: CliContext, value: unknown): number {
  ctx.out(typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return EXIT.ok;
}

function lines(ctx: CliContext, out: readonly string[]): number {
  ctx.outLines(out);
  return EXIT.ok;
}

/** What the commands read of a script backend's config. */
interface ScriptBackendConfig {
  readonly trust?: TrustPolicy;
  readonly env?: readonly string[];
}

/** The configs of the goals' script backends; undefined without goals, or when they do not compile. */
async function scriptBackends(ctx: CliContext): Promise<ScriptBackendConfig[] | undefined> {
  const loaded = await compileGoals(ctx).catch(() => undefined);
  return loaded === undefined ? undefined : [...loaded.factory.backends.values()].filter((b) => b.type === 'script').map((b) => b.config as ScriptBackendConfig);
}

/**
 * The trust bar the goals configure on their script backends (`config.trust`),
 * so that `scripts trust` shows the gate the daemon applies. With several,
 * the strictest; with none, none.
 */
function strictestTrust(backends: readonly ScriptBackendConfig[]): TrustPolicy | undefined {
  const bars = backends.map((b) => b.trust).filter((t): t is TrustPolicy => t !== undefined);
  return bars.sort((a, b) => b.bar - a.bar)[0];
}

/**
 * The secrets a script may quote, masked as the backends mask them in faults and outputs: those of the
 * goals' script backends' allowlists in this environment; without goals, every one of this environment.
 */
function secretsOf(ctx: CliContext, backends: readonly ScriptBackendConfig[] | undefined): SecretMask {
  const names = backends === undefined ? Object.keys(ctx.env) : backends.flatMap((b) => b.env ?? []);
  return SecretMask.fromEnv(allowlistedEnv(ctx.env, names));
}
