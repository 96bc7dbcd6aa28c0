import { request } from 'node:http';
import { parseListen } from '../../server/http.ts';
import { assertNever, CIRCUITS_META, DesiredStateError, ErrorCodes, errorMessage, GOAL_ERRORS_META, GOALS_EMPTY_META, GOALS_IDLE_META, NODE_STATUSES, heldByPolicy, parseDuration, releaseAllStoredNodes, releaseStoredNode, shownRecord, SqliteStateStore } from '../../runtime/index.ts';
import type { CircuitStatus, CircuitWait, NodeRecord, OperatorRetryAnswer, RunRecord } from '../../runtime/index.ts';
import { compileGoals, DAEMON_LISTEN, DAEMON_PID, optionalGoalsDir, stateFile, withStateStore } from '../context.ts';
import type { CliContext } from '../context.ts';
import { cellLine, formatDiff, isoTime, oneLine, table } from '../format.ts';
import { EXIT, UsageError } from '../usage.ts';
import { shortCommit } from '../git.ts';

/** What a daemon recorded in the state about itself (none: no daemon set it, or it stopped and cleared it). */
interface DaemonMeta {
  readonly listen: string | null;
  readonly pid: string | null;
}

function daemonMeta(store: SqliteStateStore): DaemonMeta {
  return { listen: store.getMeta(DAEMON_LISTEN) ?? null, pid: store.getMeta(DAEMON_PID) ?? null };
}

/**
 * Whether a daemon serves this state now: it recorded its pid (as it took the lock) and still holds the
 * lock; `starting` until its first goal load is done and it records its API address. A daemon killed
 * (SIGKILL, a crash) leaves its pid and address behind; the lock may since have been taken by another
 * process (an apply, another daemon), which is not the daemon they name.
 */
function daemonOf(ctx: CliContext, meta: DaemonMeta): { running: boolean; starting?: true; pid?: number; listen?: string } {
  if (meta.listen === null && meta.pid === null) return { running: false };
  const holder = SqliteStateStore.lockHolder(stateFile(ctx));
  // Alive unknown (another host): trust what it left.
  if (holder === undefined || holder.alive === false) return { running: false };
  // No pid recorded (a daemon of a release before the pid was): the lock holder is taken for it, as then.
  if (meta.pid !== null && meta.pid !== String(holder.pid)) return { running: false };
  if (meta.listen === null) return { running: true, starting: true, pid: holder.pid };
  return { running: true, pid: holder.pid, listen: meta.listen };
}

/** The API address of the daemon serving this state now, if one is. */
export function runningDaemon(ctx: CliContext, store: SqliteStateStore): string | undefined {
  return daemonOf(ctx, daemonMeta(store)).listen;
}

/** `status --format json`: the one document, with a state or before there is one. */
function statusDocument(nodes: readonly NodeRecord[], goalErrors: string | null, emptyGoals: boolean, daemon: ReturnType<typeof daemonOf>, circuits: readonly CircuitStatus[]): string {
  return JSON.stringify({ nodes: nodes.map(shownRecord), goalErrors: goalErrors === null ? null : JSON.parse(goalErrors), emptyGoals, daemon, circuits }, null, 2);
}

/** The circuits a running daemon has open; none when no daemon runs (what a killed one left is no longer true). */
function openCircuits(stored: string | undefined, running: boolean): CircuitStatus[] {
  if (!running || stored === undefined) return [];
  try {
    const parsed: unknown = JSON.parse(stored);
    return Array.isArray(parsed) ? (parsed as CircuitStatus[]) : [];
  } catch {
    return [];
  }
}

/** One line for an open circuit: since when, when its probe is due, what opened it. */
function circuitLine(c: CircuitStatus, now: number): string {
  const probe = c.probeAt === null || c.probeAt <= now ? 'its probe is under way' : `its probe is due at ${isoTime(c.probeAt)}`;
  const why = c.fault === null ? '' : `; opened by ${c.fault.class}: ${c.fault.message}`;
  return `backend ${c.backend}: circuit ${c.state} since ${isoTime(c.since)}, its nodes wait; ${probe}${why}`;
}

export function status(ctx: CliContext): number {
  const result = withStateStore(ctx, 'read', (store) => ({
    nodes: store.listNodes(),
    goalErrors: store.getMeta(GOAL_ERRORS_META) ?? null,
    idle: store.getMeta(GOALS_IDLE_META) === '1',
    emptyGoals: store.getMeta(GOALS_EMPTY_META) !== undefined,
    daemon: daemonMeta(store),
    circuits: store.getMeta(CIRCUITS_META),
  }));
  if (result === undefined) {
    ctx.out(ctx.format === 'json' ? statusDocument([], null, false, { running: false }, []) : 'no state yet: run `desiredstate apply` or `desiredstate run`');
    return EXIT.ok;
  }
  const daemon = daemonOf(ctx, result.daemon);
  // A daemon still starting has not loaded the goals yet: what the state says of them (and of circuits) is the last load's.
  const serving = daemon.running && daemon.starting !== true;
  const circuits = openCircuits(result.circuits, serving);
  if (ctx.format === 'json') {
    ctx.out(statusDocument(result.nodes, result.goalErrors, result.emptyGoals, daemon, circuits));
    return EXIT.ok;
  }
  ctx.out(!daemon.running ? 'daemon: not running' : daemon.starting === true ? `daemon: starting (pid ${daemon.pid}: loading the goals, not listening yet)` : `daemon: running (pid ${daemon.pid}, API on ${daemon.listen})`);
  const now = Date.now();
  for (const c of circuits) ctx.out(circuitLine(c, now));
  if (result.emptyGoals) {
    ctx.out(
      `${serving ? 'the goals hold no nodes' : 'the goals the daemon last loaded held no nodes'}: the nodes below are kept as they are, neither reconciled nor deleted (an empty goal set never deletes anything)`,
    );
  }
  if (result.goalErrors !== null) {
    if (!serving) ctx.out('goal revision rejected when the daemon last loaded the goals (nothing of it was applied):');
    else if (result.idle) ctx.out('goal revision rejected; nothing is reconciled until a revision compiles (the daemon started on it, and no last good goals are stored):');
    else ctx.out('goal revision rejected; the last good graph keeps running:');
    ctx.outLines((JSON.parse(result.goalErrors) as string[]).map((l) => `  ${l}`));
  }
  if (result.nodes.length === 0) {
    ctx.out('no nodes recorded');
    return EXIT.ok;
  }
  const rows = [['NODE', 'TYPE', 'BACKEND', 'STATUS', 'UPDATED', 'REASON']];
  for (const r of result.nodes) rows.push([r.id, r.type, r.backendId, r.status, isoTime(r.updatedAt), cellLine(r.reason ?? '')]);
  ctx.outLines(table(rows));
  const counts = new Map<string, number>();
  for (const r of result.nodes) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  ctx.out(`${result.nodes.length} node(s): ${[...counts].map(([s, n]) => `${n} ${s}`).join(', ')}`);
  return EXIT.ok;
}

export function drift(ctx: CliContext, options: { since: string | undefined; node: string | undefined; limit?: number | undefined }): number {
  if (options.node?.trim() === '') throw new UsageError('--node takes a node id (got an empty one)');
  const since = options.since === undefined ? undefined : parseSince(options.since, Date.now());
  const found = withStateStore(ctx, 'read', (store) => ({
    reports: store.listDrift({ since, node: options.node, limit: options.limit }),
    // A node asked after that the state has no record of: a typo, or one removed from the goals since.
    unknown: options.node !== undefined && store.getNode(options.node) === undefined,
  }));
  const reports = found?.reports ?? [];
  if (ctx.format === 'json') {
    ctx.out(JSON.stringify({ reports }, null, 2));
    return EXIT.ok;
  }
  if (reports.length === 0) {
    const since = options.since === undefined ? '' : ` since ${options.since}`;
    // The node as typed, on one line: one the state has no node of may hold anything.
    const node = options.node === undefined ? undefined : oneLine(options.node);
    ctx.out(found?.unknown === true ? `no drift recorded for ${node!}, which the state has no node of` : `no drift recorded${node === undefined ? '' : ` for ${node}`}${since}`);
  }
  const listed: string[] = [];
  for (const r of reports) {
    // First seen before this report: the same drift, still there, reported again (its values changed).
    const began = r.firstSeen === r.detectedAt ? '' : `, first seen ${isoTime(r.firstSeen)}`;
    listed.push(`${isoTime(r.detectedAt)}  ${r.node} (${r.goal}, ${r.backendId})  ${r.action}${r.flapping ? ', flapping' : ''}${began}${r.commit === null ? '' : `  commit ${shortCommit(r.commit)}`}`);
    for (const d of r.diffs) listed.push(...formatDiff(d));
  }
  ctx.outLines(listed);
  return EXIT.ok;
}

/** An ISO 8601 date or date-time (`2026-11-23`, `2026-11-23T02:00:00Z`, `…T02:00+01:00`; without a zone, local time). */
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** Whether the timestamp's date is one of the calendar: Date.parse rolls `2026-11-31` over to 1 December. */
function isCalendarDate(text: string): boolean {
  const [y, m, d] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(y, m - 1, d));
  return m >= 1 && m <= 12 && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

/**
 * `--since`: a duration back from `now` (`1h`, `30m`, `2d`, `1h30m`) or an ISO 8601 timestamp, in epoch ms.
 * Date.parse alone takes almost anything (`5` is 1 May 2001, `Nov 23` is in 2001): only ISO 8601 is let through to it.
 */
export function parseSince(text: string, now: number): number {
  const ms = parseDuration(text);
  if (ms !== undefined) return now - ms;
  const at = ISO_TIMESTAMP.test(text) && isCalendarDate(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) throw new UsageError(`--since takes a duration such as 1h or an ISO 8601 timestamp such as 2026-01-31T12:00:00Z (got "${text}")`);
  return at;
}

export function history(ctx: CliContext, options: { limit: number; run?: number | undefined } = { limit: 50 }): number {
  if (options.run !== undefined) return runDetail(ctx, options.run, options.limit);
  const runs = withStateStore(ctx, 'read', (store) => store.listRuns(options.limit)) ?? [];
  if (ctx.format === 'json') {
    ctx.out(JSON.stringify({ runs }, null, 2));
    return EXIT.ok;
  }
  if (runs.length === 0) {
    ctx.out('no runs recorded');
    return EXIT.ok;
  }
  const ongoing = runOngoing(ctx);
  const rows = [['RUN', 'STARTED', 'TRIGGER', 'COMMIT', 'CHANGES']];
  for (const r of runs) rows.push([String(r.id), isoTime(r.startedAt), r.trigger, r.commit === null ? '-' : shortCommit(r.commit), runChanges(r, ongoing(r))]);
  ctx.outLines(table(rows));
  return EXIT.ok;
}

/**
 * Whether a run not finished is going on: only if the process holding the state now started it. One whose
 * process was killed (SIGKILL, a crash, a power cut) never finishes, and is shown as interrupted.
 */
function runOngoing(ctx: CliContext): (r: RunRecord) => boolean {
  const holder = SqliteStateStore.lockHolder(stateFile(ctx));
  const heldSince = holder === undefined || holder.alive === false ? undefined : holder.since;
  return (r) => heldSince !== undefined && r.startedAt >= heldSince;
}

/** A run's counts (`+2 ~1 -0 !1 x0 ⊘0`), and whether it is still going on or was cut short. */
function runChanges(r: RunRecord, ongoing: boolean): string {
  const s = r.summary;
  const counts = s === null ? '' : `+${s.created} ~${s.updated} -${s.deleted}${(s.orphaned ?? 0) === 0 ? '' : ` ○${s.orphaned}`} !${s.drifted} x${s.failed} ⊘${s.blocked + s.held}`;
  if (r.finishedAt !== null) return counts;
  return `${counts}${ongoing ? (s === null ? 'running, nothing done yet' : ' so far') : s === null ? 'interrupted' : ' (interrupted)'}`;
}

/** `history RUN`: the run, and the creates, updates and deletes it made (the first `limit`), in order. */
function runDetail(ctx: CliContext, id: number, limit: number): number {
  const found = withStateStore(ctx, 'read', (store) => {
    const run = store.getRun(id);
    return run === undefined ? undefined : { run, ...store.runOperations(id, limit) };
  });
  if (ctx.format === 'json') {
    ctx.out(JSON.stringify(found === undefined ? { run: null, operations: [], total: 0 } : found, null, 2));
    return EXIT.ok;
  }
  if (found === undefined) {
    ctx.out(`no run ${id} recorded (desiredstate history lists the runs kept)`);
    return EXIT.ok;
  }
  const { run, operations, total } = found;
  ctx.out(`run ${run.id}  ${isoTime(run.startedAt)}  ${run.trigger}  commit ${run.commit === null ? '-' : shortCommit(run.commit)}  ${runChanges(run, runOngoing(ctx)(run))}`);
  if (total === 0) {
    ctx.out('no creates, updates or deletes');
    return EXIT.ok;
  }
  const rows = [['STARTED', 'OP', 'NODE', 'OUTCOME', 'DETAIL']];
  for (const o of operations) rows.push([isoTime(o.startedAt), o.op, o.node, o.outcome ?? 'pending', cellLine(o.detail ?? '')]);
  ctx.outLines(table(rows));
  if (total > operations.length) ctx.out(`… and ${total - operations.length} more (--limit ${total} shows them all)`);
  return EXIT.ok;
}

/**
 * Releases a held node. With a daemon running, asks it over its HTTP API
 * (it holds the node's state in memory); otherwise updates the store. A node
 * that is not held is left as it is.
 */
export async function retry(ctx: CliContext, node: string | undefined, options: { all?: boolean } = {}): Promise<number> {
  if (options.all === true && node !== undefined) throw new UsageError('retry takes a node id or --all, not both');
  if (options.all !== true && node === undefined) throw new UsageError('retry needs a node id (or --all): desiredstate retry NODE');
  if (node?.trim() === '') throw new UsageError('retry takes a node id (got an empty one)');
  if (node === undefined) return retryAll(ctx);
  const daemon = withStateStore(ctx, 'read', (store) => runningDaemon(ctx, store)) ?? null;
  const { answer, via } = await releaseNode(ctx, node, daemon);
  // Not in the state, yet in the goals (added since the last pass): a node, not held, not unknown.
  if (answer.status === 'unknown' && (await declaredInGoals(ctx, node))) return answered(ctx, node, { status: 'not-held', current: 'pending' }, via);
  return answered(ctx, node, answer, via);
}

/**
 * Whether the goals declare `node`: asked only of a node the state does not know (nothing was
 * released), the one time retry reads the goals. Where there is no goal directory (retry needs none)
 * or the goals do not compile, they declare nothing here, and the node stays unknown; a goal directory
 * named (--goals, $DESIREDSTATE_GOALS) that is not there is a bad invocation (exit 64), as for every
 * command that reads the goals.
 */
async function declaredInGoals(ctx: CliContext, node: string): Promise<boolean> {
  if (!optionalGoalsDir(ctx)) return false;
  try {
    return (await compileGoals(ctx)).result.graph?.has(node) === true;
  } catch {
    return false;
  }
}

/**
 * Releases every node the fault policy holds or a backoff keeps waiting (after fixing what held them
 * all: a password, a server): what `retry NODE` does, for each, in one request to the daemon or one
 * transaction. A node a policy holds is left to the policy; releasing it would only hold it again.
 */
async function retryAll(ctx: CliContext): Promise<number> {
  const daemon = withStateStore(ctx, 'read', (store) => runningDaemon(ctx, store)) ?? null;
  let released: string[] | undefined;
  let circuits: readonly CircuitWait[] = [];
  let via: 'daemon' | 'store' = 'daemon';
  let why: string | undefined;
  if (daemon !== null) {
    try {
      const res = await postToDaemon(daemon, '/retry');
      const body = res.body as { released?: unknown; circuits?: unknown; error?: unknown } | undefined;
      // An answer that is not a list of ids is no answer: the store is asked below.
      if (res.ok && Array.isArray(body?.released) && body.released.every((id) => typeof id === 'string')) {
        released = body.released as string[];
        if (Array.isArray(body.circuits)) circuits = body.circuits as CircuitWait[];
      } else why = refusal(res.status, body);
    } catch (err) {
      // No daemon answering at the recorded address (it was killed): the store is asked below.
      why = noAnswer(err);
    }
  }
  if (released === undefined) {
    via = 'store';
    released = releaseInStore(ctx, daemon, why, (store) => releaseAllStoredNodes(store, Date.now())) ?? [];
  }
  // Said, so that "nothing to do" is not read as nothing held while status lists nodes a policy holds.
  const policyHeld = withStateStore(ctx, 'read', (store) => store.listNodes().filter(heldByPolicy).map((r) => r.id)) ?? [];
  if (ctx.format === 'json') ctx.out(JSON.stringify({ released, via, ...(circuits.length === 0 ? {} : { circuits }), ...(policyHeld.length === 0 ? {} : { heldByPolicy: policyHeld }) }, null, 2));
  else {
    ctx.outLines(released.map((id) => releasedLine(id, via, circuits.find((c) => c.nodes.includes(id)))));
    const policy = policyHeld.length === 0 ? '' : ` (${policyHeld.length} held by a policy: fix the finding, retry does not release them; see desiredstate status)`;
    if (released.length > 0) ctx.out(`released ${released.length} node(s)${policy}`);
    else ctx.out(policy === '' ? 'no node is held; nothing to do' : `no node is held by the fault policy; nothing to do${policy}`);
  }
  return EXIT.ok;
}

/** Releases one node: through the daemon when one answers at `daemon`, else in the store. */
export async function releaseNode(ctx: CliContext, node: string, daemon: string | null): Promise<{ answer: OperatorRetryAnswer; via: 'daemon' | 'store' }> {
  let why: string | undefined;
  if (daemon !== null) {
    try {
      const res = await postToDaemon(daemon, `/retry/${encodeURIComponent(node)}`);
      if (res.status === 404) return { answer: { status: 'unknown' }, via: 'daemon' };
      const body = res.body as { status?: unknown; circuit?: CircuitStatus; error?: unknown } | undefined;
      if (res.ok) return { answer: body?.circuit === undefined ? { status: 'released' } : { status: 'released', circuit: body.circuit }, via: 'daemon' };
      // An answer naming no status we know is no answer: the store is asked below.
      const current = res.status === 409 ? NODE_STATUSES.find((s) => s === body?.status) : undefined;
      if (current !== undefined) return { answer: { status: 'not-held', current }, via: 'daemon' };
      why = refusal(res.status, body);
    } catch (err) {
      // No daemon answering at the recorded address (it was killed): the store is asked below.
      why = noAnswer(err);
    }
  }
  const answer = releaseInStore(ctx, daemon, why, (store) => releaseStoredNode(store, node, Date.now()));
  return { answer: answer ?? { status: 'unknown' }, via: 'store' };
}

/**
 * A release written to the store, holding its lock. A daemon (or an apply) keeps node records in
 * memory: a release written beside it would never be seen, or be written over, while `status`
 * showed the node released. So while one holds the state (its API refused the request, or did not
 * answer in time) nothing is released, and the error says what the daemon answered.
 */
export function releaseInStore<T>(ctx: CliContext, daemon: string | null, why: string | undefined, fn: (store: SqliteStateStore) => T): T | undefined {
  try {
    return withStateStore(ctx, 'locked', fn);
  } catch (err) {
    if (!(err instanceof DesiredStateError) || err.code !== ErrorCodes.StateLocked) throw err;
    const message =
      daemon === null
        ? err.message
        : `the daemon at ${daemon} (process ${String(err.context.pid)}) did not release it (${why ?? 'no answer'}), and the state is its own while it runs: a release written beside it would never be seen`;
    throw new DesiredStateError(ErrorCodes.StateLocked, `nothing released: ${message}`, { cause: err, context: err.context });
  }
}

/** A daemon's answer that is none of the expected ones, for the error: its status and `error`. */
function refusal(status: number, body: { error?: unknown } | undefined): string {
  return `HTTP ${status}${typeof body?.error === 'string' ? `: ${body.error}` : ''}`;
}

/**
 * POSTs to the daemon's API at the address it recorded (`127.0.0.1:7474`, `[::1]:7474`,
 * `[fe80::1%eth0]:7474`); the body is the parsed JSON, or undefined. Not fetch: its URLs cannot name an
 * IPv6 zone (the WHATWG URL parser refuses `%eth0` and RFC 6874's `%25eth0` alike); http.request takes
 * the address as it is.
 */
export function postToDaemon(daemon: string, path: string): Promise<{ status: number; ok: boolean; body: unknown }> {
  const at = parseListen(daemon);
  if (at === undefined) return Promise.reject(new Error(`unreadable daemon address "${daemon}"`));
  return new Promise((resolve, reject) => {
    const req = request({ host: at.host, port: at.port, path, method: 'POST', signal: AbortSignal.timeout(5000) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          body = undefined;
        }
        const status = res.statusCode ?? 0;
        resolve({ status, ok: status >= 200 && status < 300, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** Why a request to the daemon got no answer: the socket's error code (ECONNREFUSED), or the timeout. */
function noAnswer(err: unknown): string {
  if (err instanceof Error && (err.cause as Error | undefined)?.name === 'TimeoutError') return 'no answer within 5 s';
  const code = (err as NodeJS.ErrnoException).code;
  return typeof code === 'string' ? code : errorMessage(err);
}

function answered(ctx: CliContext, node: string, answer: OperatorRetryAnswer, via: 'daemon' | 'store'): number {
  switch (answer.status) {
    case 'unknown':
      // A script reading stdout gets a document for this outcome too, not an empty stream.
      if (ctx.format === 'json') ctx.out(JSON.stringify({ unknown: node, via }, null, 2));
      process.stderr.write(`unknown node "${oneLine(node)}"\n`);
      return EXIT.failed;
    case 'not-held':
      if (ctx.format === 'json') ctx.out(JSON.stringify({ notHeld: node, status: answer.current, via }, null, 2));
      // Held, yet not releasable: a policy holds it, until the goal or the policy changes.
      else ctx.out(answer.current === 'held' ? `${node} is held by a policy, not the fault policy; nothing to do (see desiredstate status)` : `${node} is not held (status ${answer.current}); nothing to do`);
      return EXIT.ok;
    case 'released':
      if (ctx.format === 'json') ctx.out(JSON.stringify({ released: node, via, ...(answer.circuit === undefined ? {} : { circuit: answer.circuit }) }, null, 2));
      else ctx.out(releasedLine(node, via, answer.circuit));
      return EXIT.ok;
    default:
      return assertNever(answer);
  }
}

/** What follows a release: now, at the next pass, or (its backend's circuit open) not before the circuit's probe. */
export function releasedLine(node: string, via: 'daemon' | 'store', circuit?: CircuitStatus, now = Date.now()): string {
  if (via === 'store') return `released ${node}; it is reconciled on the next pass`;
  if (circuit === undefined) return `released ${node}; the daemon reconciles it now`;
  const probe = circuit.probeAt === null || circuit.probeAt <= now ? 'its probe, under way' : `its probe, due at ${isoTime(circuit.probeAt)}`;
  const why = circuit.fault === null ? '' : ` (opened by ${circuit.fault.class}: ${circuit.fault.message})`;
  return `released ${node}; backend ${circuit.backend}'s circuit is ${circuit.state}${why}: ${node} waits for ${probe}`;
}
