import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Controller, DEFAULT_INTERVAL_MS, DesiredStateError, displayPath, ErrorCodes, errorMessage, formatDiagnostic, MAX_TIMER_MS, MIN_INTERVAL_MS, parseDuration, shownRecord, stableStringify } from '../../runtime/index.ts';
import type { CircuitBreakerConfig, DesiredNode, FaultPolicy, NodeId, SqliteStateStore } from '../../runtime/index.ts';
import { infraSpecCodec, InfraNodeProvisioner, leftoverHoldReason, processLeaseDir, startSettlingLeftoverProcesses } from '../../infra/index.ts';
import type { LeftoverProcess } from '../../infra/index.ts';
import type { InfraBackend, InfraDesiredNodeSpec } from '../../infra/index.ts';
import { parseListen, startHttpServer } from '../../server/http.ts';
import type { DaemonProbe } from '../../server/http.ts';
import { BACKENDS_META, compileGoalsCached, declaredBackends, DAEMON_LISTEN, DAEMON_PID, lastGoodGoals, openStore, printDiagnostics, pruneHistory, recordBackendPlaces, registry, requireGoalsDir, requireStateDir } from '../context.ts';
import { loadFaultPolicyFile } from '../fault-policy-file.ts';
import type { CliContext } from '../context.ts';
import { GoalsCommitWatch } from '../commit-watch.ts';
import { gitIndexLock, goalsCommit } from '../git.ts';
import { goalTreeFingerprint, watchGoalTree } from '../goal-watch.ts';
import type { GoalWatch } from '../goal-watch.ts';
import type { LoadedGoals } from '../load.ts';
import type { SignalStop } from '../signals.ts';
import { EXIT, MAX_CONCURRENCY, parseCount, rethrowAsUsage, UsageError } from '../usage.ts';

export interface RunOptions {
  readonly interval: string | undefined;
  readonly listen: string | undefined;
  readonly concurrency: string | undefined;
  readonly allowMassDeletion: boolean;
  readonly debounce: string | undefined;
  /** A fault policy file (retry settings per fault class, circuit breaker). */
  readonly faultPolicy: string | undefined;
  /** Milliseconds of history to keep (undefined: all). */
  readonly history: number | undefined;
}

/** How often the daemon forgets history older than `--history`. */
const PRUNE_EVERY_MS = 60 * 60_000;

/** How often the goal tree's file stats are compared, in case a change event was missed. */
const GOAL_POLL_MS = 5_000;

/** How often the daemon looks whether it still owns the state (`SqliteStateStore.lostOwnership`). */
const OWNERSHIP_CHECK_MS = 2_000;

/**
 * The daemon: continuous reconciliation until SIGTERM/SIGINT (exit 0), or until its lock or state file
 * is removed or replaced under it (exit 1: another writer may hold the state).
 * Reloads the goals when their files change and on SIGHUP; a revision that
 * does not compile is logged and the last good graph keeps running.
 *
 * `stop.signal` is aborted by the first SIGTERM or SIGINT (the launcher
 * listens for them from its first moment). One that comes during start-up
 * stops the daemon as soon as start-up can be unwound, still with exit 0;
 * later ones are logged and ignored.
 */
export async function run(ctx: CliContext, options: RunOptions, stop: SignalStop): Promise<number> {
  const log = ctx.log;
  // SIGHUP reloads once the goals have been loaded; before that, the first load reads them anyway.
  let reloadOnHup: (() => void) | undefined;
  const unroute = stop.route({
    again: (signal) => log.info({ signal }, 'already stopping; signal ignored'),
    hup: () => reloadOnHup?.(),
  });
  try {
    return await daemon(ctx, options, stop.signal, (reload) => (reloadOnHup = reload));
  } finally {
    unroute();
  }
}

/** Why the daemon loads the goals. */
type LoadReason = 'start' | 'SIGHUP' | 'goals changed';

/** Resolves when `signal` is aborted. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

async function daemon(ctx: CliContext, options: RunOptions, stop: AbortSignal, onHup: (reload: () => void) => void): Promise<number> {
  const intervalMs = options.interval === undefined ? DEFAULT_INTERVAL_MS : parseDuration(options.interval);
  if (intervalMs === undefined) throw new UsageError(`--interval takes a duration such as 500ms, 30s or 5m (got "${options.interval}")`);
  if (intervalMs < MIN_INTERVAL_MS) throw new UsageError(`--interval is at least ${MIN_INTERVAL_MS}ms: every node read again sooner is a busy loop (got "${options.interval}")`);
  const listenText = options.listen ?? '127.0.0.1:7474';
  const listen = parseListen(listenText);
  if (listen === undefined) throw new UsageError(`--listen takes HOST:PORT (got "${options.listen}")`);
  const concurrency = parseCount('concurrency', options.concurrency, MAX_CONCURRENCY, 10);
  const debounceMs = options.debounce === undefined ? 300 : parseDuration(options.debounce);
  // One platform timer, which fires at once past MAX_TIMER_MS.
  if (debounceMs === undefined || debounceMs > MAX_TIMER_MS) throw new UsageError(`--debounce takes a duration such as 300ms, at most 24d (got "${options.debounce}")`);
  // As an empty --goals: `--fault-policy "$FAULTS"` with the variable unset, not the working directory.
  if (options.faultPolicy === '') throw new UsageError('--fault-policy is empty; name a file');
  requireGoalsDir(ctx);
  requireStateDir(ctx);
  let faults: { policy: FaultPolicy; circuitBreaker: CircuitBreakerConfig } | undefined;
  if (options.faultPolicy !== undefined) {
    const file = resolve(ctx.cwd, options.faultPolicy);
    if (!existsSync(file)) throw new UsageError(`fault policy file ${file} does not exist`);
    // A pipe is fine (`--fault-policy <(…)`); a directory cannot be read as one.
    if (statSync(file).isDirectory()) throw new UsageError(`fault policy file ${file} is a directory`);
    // A pipe with no writer yet waits (in the event loop): a SIGTERM meanwhile stops the start-up.
    const loaded = await Promise.race([loadFaultPolicyFile(file, displayPath(file, ctx.cwd)), aborted(stop).then(() => undefined)]);
    if (loaded === undefined) {
      ctx.log.info({ signal: stop.reason }, 'stopped before starting');
      return EXIT.ok;
    }
    if ('diagnostics' in loaded) {
      // Bad policy data changes nothing: the daemon does not start.
      printDiagnostics(ctx, loaded.diagnostics);
      return EXIT.failed;
    }
    faults = loaded;
  }

  const log = ctx.log;
  if (stop.aborted) {
    // Stopped while loading: nothing was opened, nothing to put away.
    log.info({ signal: stop.reason }, 'stopped before starting');
    return EXIT.ok;
  }

  // The address first: a daemon that cannot serve its API (address in use, not allowed) is a bad
  // invocation, and stops before it has opened the state or touched anything.
  let controller: Controller<InfraDesiredNodeSpec> | undefined;
  const http = await listenOn(listen, listenText, {
    ready: () =>
      controller?.ready === true ? { ready: true } : { ready: false, reason: controller?.currentGraph === undefined ? 'no valid goals loaded' : 'first reconcile round in progress' },
    status: () => ({ nodes: controller?.nodes().map(shownRecord) ?? [], goalErrors: controller?.goalErrors ?? null, emptyGoals: controller?.emptyGoals ?? false, queue: controller?.queueStats() ?? null, circuits: controller?.circuits() ?? [] }),
    retry: (node) => controller?.operatorRetry(node) ?? { status: 'unknown' },
    retryAll: () => controller?.operatorRetryAll() ?? { released: [], circuits: [] },
  });
  const address = `${http.address.family === 'IPv6' ? `[${http.address.address}]` : http.address.address}:${http.address.port}`;
  let store: SqliteStateStore | undefined;
  let goalWatch: GoalWatch | undefined;
  let pruning: NodeJS.Timeout | undefined;
  let ownership: NodeJS.Timeout | undefined;
  /**
   * Aborted when the daemon finds its lock or state file gone or replaced: another writer may hold the
   * state now. It stops as on a signal, but touches the state no more than it must, and exits 1.
   */
  const lost = new AbortController();
  const halt = AbortSignal.any([stop, lost.signal]);
  let commitWatch: GoalsCommitWatch | undefined;
  let loading: Promise<void> = Promise.resolve();
  let backendMap: ReadonlyMap<string, InfraBackend> = new Map();
  /** Whether it recorded itself in the state (`DAEMON_PID`), to clear when it stops. */
  let recorded = false;
  /** Set once the daemon stops: a load still reading the goals then installs nothing of them. */
  let closing = false;
  let leftovers: readonly LeftoverProcess[] = [];
  try {
    const opened = (store = openStore(ctx, { lock: true }));
    // Its pid as soon as it holds the lock (an apply meanwhile is refused by it): `status` says it is starting
    // until its first load is done and it records its address below. An address a killed daemon left goes.
    opened.transaction(() => {
      opened.setMeta(DAEMON_LISTEN, null);
      opened.setMeta(DAEMON_PID, String(process.pid));
    });
    recorded = true;
    ownership = setInterval(() => {
      const why = opened.lostOwnership();
      if (why === undefined || lost.signal.aborted) return;
      log.fatal({ file: why.file }, `${why.reason} while the daemon ran: another desiredstate may hold the state now; stopping (exit 1)`);
      lost.abort();
    }, OWNERSHIP_CHECK_MS);
    ownership.unref();
    const provisioner = new InfraNodeProvisioner({ backends: new Map() });
    let backendKey = '';
    const c = (controller = new Controller<InfraDesiredNodeSpec>({
      provisioner,
      store: opened,
      log,
      codec: infraSpecCodec,
      intervalMs,
      concurrency,
      allowMassDeletion: options.allowMassDeletion,
      ...(faults === undefined ? {} : { faultPolicy: faults.policy, circuitBreaker: faults.circuitBreaker }),
      watch: (nodes, onChange) => watchBackends(backendMap, nodes, onChange, log),
    }));
    leftovers = holdLeftovers(ctx, c, halt);
    // The commit of the goals running, which drift is reported under: told of every load, and (once the
    // daemon runs) watching HEAD move without the goal files changing.
    const commits = (commitWatch = new GoalsCommitWatch(ctx.goalsDir, { log, record: (commit) => c.setCommit(commit) }));

    /**
     * A revision that cannot be used (it does not compile, or cannot be read): nothing changes. The
     * last good graph keeps running; a daemon that has none yet (it starts on such a revision) runs
     * the goals last applied, for these goals and this program (`lastGoodGoals`).
     */
    const reject = async (why: LoadReason, errors: readonly string[], fields: Record<string, unknown>, what: string): Promise<void> => {
      const last = c.currentGraph === undefined ? await lastGoodGoals(ctx, opened) : undefined;
      if (closing) return;
      if (last?.loaded.result.graph !== undefined) {
        // Their size beside the refused revision's own fields (a mass deletion's `nodes` name what it would have deleted).
        log.error({ ...fields, lastGoodNodes: last.loaded.result.graph.size }, `${what}; the goals last applied run instead`);
        // Under the commit they were applied at, as their runs and drift were then: not HEAD's, which is refused.
        await use(last.loaded, last.commit, why, undefined);
      } else {
        // The graph running keeps its commit: the commit watch records none while the goal files are not
        // those it was loaded from, so the refused revision's never became it.
        if (c.currentGraph === undefined) log.error(fields, `${what}; nothing is reconciled until a revision compiles (no last good goals are stored for them)`);
        else log.error(fields, `${what}; the last good graph keeps running`);
        commits.refused();
      }
      c.rejectRevision(errors);
    };

    /** Loads the goals. For 'goals changed' the goal watch has taken the files' fingerprint already; otherwise it is taken here, before reading. */
    const load = async (why: LoadReason): Promise<void> => {
      // Taken before reading (for 'goals changed' the goal watch has one too, maybe older): the files the
      // graph is compiled from, which the commit watch compares with.
      const fingerprint = await goalTreeFingerprint(ctx.goalsDir);
      if (why !== 'goals changed') goalWatch?.accept(fingerprint);
      const commit = await goalsCommit(ctx.goalsDir, log);
      let unreadable: string | undefined;
      // Through the compiled-goal cache, as plan and apply: unchanged goals skip compiling.
      const cached = await compileGoalsCached(ctx).catch((err: unknown) => {
        unreadable = errorMessage(err);
        return undefined;
      });
      // Stopped while they were read: the controller is stopping, and the next start reads them again.
      if (closing) return;
      if (await changedWhileRead(why, fingerprint)) {
        // Half a checkout may lack a node that only moves to another file: not one of them is used.
        log.info({ reason: why }, 'goals changed while they were read (or git began writing them); read again once they are quiet');
        goalWatch?.readAgain();
        return;
      }
      if (cached === undefined) {
        // A missing or unreadable goal directory is a rejected revision like any other: nothing changes.
        const message = unreadable ?? 'the goals cannot be read';
        await reject(why, [message], { text: message, commit, reason: why }, 'goals cannot be read');
        return;
      }
      const { loaded } = cached;
      const { graph, diagnostics } = loaded.result;
      if (graph === undefined) {
        for (const d of diagnostics) log.error({ file: d.file, line: d.line, col: d.col, code: d.code, severity: d.severity, text: d.message }, 'goal error');
        await reject(why, diagnostics.map(formatDiagnostic), { errors: diagnostics.filter((d) => d.severity === 'error').length, commit, reason: why }, 'goal revision rejected');
        return;
      }
      for (const d of diagnostics) log.warn({ file: d.file, line: d.line, col: d.col, code: d.code, text: d.message }, 'goal warning');
      // A revision that would delete more than the guard allows is refused whole, as one that does
      // not compile: the last good graph keeps running, its nodes still reconciled. Its deletes are
      // judged by the backends it declares, not yet those of the provisioner.
      const backends = declaredBackends(opened, loaded, ctx.cwd);
      const mass = c.massDeletion(graph, (node) => provisioner.refusedByDeclaration(node, backends));
      if (mass !== undefined) {
        const shown = mass.ids.length > 10 ? `${mass.ids.slice(0, 10).join(', ')} and ${mass.ids.length - 10} more` : mass.ids.join(', ');
        const message = `mass deletion refused: the revision would delete ${mass.count} nodes (${shown}), more than the ${mass.limit} that max(5, 10 % of the managed nodes) allows; run with --allow-mass-deletion if that is intended`;
        await reject(why, [message], { count: mass.count, limit: mass.limit, nodes: mass.ids, commit, reason: why }, 'goal revision rejected (mass deletion)');
        return;
      }
      // The goals last applied from here on, in the state, before anything of them is (see `applying`).
      cached.applying(opened);
      await use(loaded, commit, why, fingerprint, backends);
      // Running: the last good goals, with their commit, for a later start on a revision that does not
      // compile. Not before: a revision refused (a mass deletion) never becomes them.
      cached.keepAsLastGood(commit);
    };

    /**
     * Whether the goal files changed since `fingerprint` was taken, before they were read, or (a reload the
     * goal watch began, which waited for git) git has begun writing the work tree since. A start or a SIGHUP
     * does not wait for git's index lock, which a git that crashed may leave behind.
     */
    const changedWhileRead = async (why: LoadReason, fingerprint: string | undefined): Promise<boolean> =>
      (await goalTreeFingerprint(ctx.goalsDir)) !== fingerprint || (why === 'goals changed' && (await gitIndexLock(ctx.goalsDir)) !== undefined);

    /**
     * Runs a goal set that compiled: its backends, then its graph, under `commit`. `fingerprint`: the goal
     * files' when the set was read from them; undefined for the last good goals stored. `backends`: what its
     * Backends reach (`declaredBackends`); a backend declared otherwise (another root, server, type) than
     * when last loaded or applied is a goal change for its nodes.
     */
    const use = async (
      loaded: LoadedGoals,
      commit: string | null,
      why: LoadReason,
      fingerprint: string | undefined,
      backends = declaredBackends(opened, loaded, ctx.cwd),
    ): Promise<void> => {
      const { graph, gates } = loaded.result;
      if (graph === undefined) return;
      const declarations = [...loaded.factory.backends.values()];
      // Instances are made anew only for another declaration (a timeout edited too, which changes no node),
      // not for the same one written elsewhere.
      const key = stableStringify(declarations.map((d) => [d.id, d.type, d.config]));
      const changedBackends = backends.changed;
      // New backends go in before the graph (setGraph starts watching through them) and are
      // taken out again if the store refuses the revision: the last good graph keeps its own.
      // setGraph throws only before its graph is in; after, a refused write waits for the store.
      const previous = backendMap;
      const fresh = key === backendKey ? undefined : registry().instantiate(declarations, { cwd: ctx.cwd, log, stateDir: ctx.stateDir, env: ctx.env });
      if (fresh !== undefined) backendMap = fresh;
      const old = fresh === undefined ? undefined : provisioner.replaceBackends(fresh);
      const declaredBefore = provisioner.declare(backends);
      try {
        await c.setGraph(graph, { gates, commit, changedBackends });
        commits.loaded(commit, fingerprint);
      } catch (err) {
        provisioner.declare(declaredBefore);
        if (fresh !== undefined && old !== undefined) {
          provisioner.replaceBackends(old);
          backendMap = previous;
          await Promise.allSettled([...fresh.values()].map((b) => b.close()));
        }
        throw err;
      }
      // The controller has recorded those nodes as changed (their records say so across a restart).
      // Not written (a full disk): the next load finds the same change, and looks at them once more.
      try {
        opened.setMeta(BACKENDS_META, JSON.stringify(backends.keys));
        recordBackendPlaces(opened, backends);
      } catch (err) {
        log.debug({ err }, 'backend declarations not recorded');
      }
      if (changedBackends.size > 0) log.info({ backends: [...changedBackends] }, 'backend declarations changed; their nodes are reconciled as changed goals');
      if (old !== undefined) {
        backendKey = key;
        await Promise.allSettled([...old.values()].map((b) => b.close()));
      }
      log.info({ nodes: graph.size, commit, reason: why }, 'goals loaded');
    };
    /** A load failed because the state store refused it, and none has worked since. */
    let storeRefusing = false;
    /** Queues a load behind the one in progress; one that fails is logged, and never leaves the queue rejected. */
    const reload = (why: LoadReason): Promise<void> => {
      loading = loading.then(() =>
        load(why).then(
          () => {
            storeRefusing = false;
          },
          (err: unknown) => {
            // The last good graph keeps running. Forgetting the loaded fingerprint makes the goal poll
            // load the goals again; while the state store refuses writes (a full or read-only disk)
            // that is every few seconds, said once until a load works again. Anything else, each time.
            const refused = err instanceof DesiredStateError && err.code === ErrorCodes.StateStore;
            const line = { err, reason: why };
            if (refused && storeRefusing) log.debug(line, 'goals still cannot be loaded');
            else log.error(line, 'goals cannot be loaded; the last good graph keeps running and they are loaded again shortly');
            storeRefusing = refused;
            goalWatch?.accept(undefined);
          },
        ),
      );
      return loading;
    };

    // Goal files: watch the tree, debounce, reload; a change re-plans only what changed.
    goalWatch = watchGoalTree(ctx.goalsDir, {
      pollMs: GOAL_POLL_MS,
      debounceMs,
      onChange: () => void reload('goals changed'),
      onWait: (wait) => {
        if (wait.reason === 'quiet') log.debug({ debounceMs }, 'goals changed (found by the poll); reloaded once they are quiet');
        else if (wait.heldMs === 0) log.info({ lock: wait.lock }, 'reload deferred: git is writing the work tree');
        else log.warn({ lock: wait.lock, heldMs: wait.heldMs }, 'reload still deferred: git holds its index lock; if no git command is running, one that crashed left it: remove it');
      },
      onError: (err) => log.warn({ text: errorMessage(err) }, 'cannot watch a goal directory; changes there are noticed by polling'),
    });
    // Watched before the first load takes its fingerprint: an edit after that is seen at once, not at
    // the poll. A SIGHUP meanwhile has nothing to reload: the first read is to come.
    await goalWatch.ready;
    onHup(() => void reload('SIGHUP'));
    // A signal during the first load stops it as any other work (the deletes of nodes removed from the
    // goals included), within the same grace: nothing has been reconciled; stop here.
    await Promise.race([reload('start'), aborted(halt)]);
    if (!halt.aborted) {
      c.start();
      pruneHistory(ctx, opened, options.history);
      pruning = setInterval(() => pruneHistory(ctx, opened, options.history), PRUNE_EVERY_MS);
      pruning.unref();
      // HEAD moves without the goal files changing (a commit elsewhere in the repository, or of the
      // edited goals): drift is reported under the commit checked out now. Unknown at first: the first
      // poll asks, so a commit made while the goals loaded is not missed.
      commits.start(GOAL_POLL_MS);
      // `desiredstate retry` finds the running daemon here and asks it to release the node at once. Its
      // pid, recorded already, goes with it: a lock held by another process (an apply after this daemon was
      // killed) is not it.
      opened.setMeta(DAEMON_LISTEN, address);
      log.info({ address, intervalMs }, 'listening');
      await aborted(halt);
    }
    if (!lost.signal.aborted) log.info({ signal: stop.reason }, 'shutting down');
  } finally {
    closing = true;
    clearInterval(pruning);
    clearInterval(ownership);
    commitWatch?.close();
    goalWatch?.close();
    http.server.close();
    http.server.closeAllConnections();
    // Before the load still running is waited for: its deletes are in-flight work, given the same 10 s
    // as the rest, then cut off and left pending.
    const stopped = controller?.stop(10_000);
    await loading; // never rejects: a failed load is logged in `reload`
    // Aborted with the daemon: they end at once, their leases kept for the next start.
    await Promise.allSettled(leftovers.map((l) => l.settled));
    await stopped;
    try {
      const s = store;
      // A state it lost is not cleared: where only the lock went, another daemon's pid is there now.
      if (recorded && s !== undefined && !lost.signal.aborted) {
        s.transaction(() => {
          s.setMeta(DAEMON_LISTEN, null);
          s.setMeta(DAEMON_PID, null);
        });
      }
    } catch (err) {
      // A full or read-only disk: `retry` finds no daemon at the stale address and falls back to the store.
      log.error({ err }, 'cannot clear the daemon address in the state store');
    }
    await Promise.allSettled([...backendMap.values()].map((b) => b.close()));
    store?.close();
  }
  log.info('stopped');
  return lost.signal.aborted ? EXIT.failed : EXIT.ok;
}

/**
 * Commands that a daemon or an apply killed -9 left running on this state are waited for (or killed at
 * their timeout) in the background, and the node each works on is held back meanwhile (neither observed
 * nor changed: a create still running observes as absent, and would be started a second time beside
 * itself); it is observed once its command is over, and what that made adopted. Every other node is
 * reconciled at once: a daemon restarted after an OOM kill is not idle for a playbook's timeout.
 *
 * A command of no node (or of one no longer in the goals, and not deleted: a hold puts off that delete
 * too) holds nothing back: nothing else of this daemon's is its business. A hold is released only when
 * its command is over, never by a goal reload or an operator's `retry`; not at all when the daemon stops
 * first (its lease stays, and the next start looks again).
 */
function holdLeftovers(ctx: CliContext, c: Controller<InfraDesiredNodeSpec>, stop: AbortSignal): LeftoverProcess[] {
  const leftovers = startSettlingLeftoverProcesses(processLeaseDir(ctx.stateDir), { log: ctx.log, signal: stop });
  for (const l of leftovers) {
    if (!l.running || l.lease.node === null) continue;
    const release = c.hold(l.lease.node, leftoverHoldReason(l.lease));
    // 'unkillable' (it outlived SIGKILL, and was logged as an error) releases it too, as the wait did before.
    void l.settled.then((settled) => {
      if (settled !== 'aborted') release();
    });
  }
  return leftovers;
}

/** Why a listen failed, for the errors that are the invocation's (exit 64), by error code. */
const LISTEN_FAILURES: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is already in use (another desiredstate running?)',
  EACCES: 'not allowed to listen there (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'no such address on this machine',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'the host name cannot be resolved',
  // Linux's answer to a multicast address, a link-local one without its interface (fe80::1 for fe80::1%eth0), an unknown interface.
  EINVAL: 'not an address to listen on (a multicast address, or a link-local one without a known interface: fe80::…%eth0)',
  EAFNOSUPPORT: 'this machine has no IPv6 (or no IPv4) to listen on',
};

/** Binds the HTTP API; a failure that names the address as the problem is a UsageError with a one-line reason. */
async function listenOn(listen: { host: string; port: number }, text: string, probe: DaemonProbe): ReturnType<typeof startHttpServer> {
  try {
    return await startHttpServer(listen, probe);
  } catch (err) {
    return rethrowAsUsage(err, `cannot listen on ${text}`, LISTEN_FAILURES);
  }
}

/**
 * Starts each backend's own change watch over its nodes: every instance that watches, one whose nodes
 * are all gone from the goals with none (it forgets them, `InfraBackend.watch`).
 */
export function watchBackends(
  backends: ReadonlyMap<string, InfraBackend>,
  nodes: readonly DesiredNode<InfraDesiredNodeSpec>[],
  onChange: (ids: readonly NodeId[]) => void,
  log: CliContext['log'],
): () => void {
  const byBackend = new Map<string, DesiredNode<InfraDesiredNodeSpec>[]>();
  for (const n of nodes) {
    let list = byBackend.get(n.spec.backendId);
    if (list === undefined) byBackend.set(n.spec.backendId, (list = []));
    list.push(n);
  }
  const stops: (() => void)[] = [];
  for (const [id, b] of backends) if (b.watch !== undefined) stops.push(b.watch(byBackend.get(id) ?? [], onChange, log.child({ backend: id })));
  return () => {
    for (const s of stops) s();
  };
}
