import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Controller, displayPath, errorMessage, formatDiagnostic, parseDuration, shownRecord } from '../../runtime/index.ts';
import type { CircuitBreakerConfig, DesiredNode, FaultPolicy, NodeId } from '../../runtime/index.ts';
import { infraSpecCodec, InfraNodeProvisioner } from '../../infra/index.ts';
import type { InfraBackend, InfraDesiredNodeSpec } from '../../infra/index.ts';
import { parseListen, startHttpServer } from '../../server/http.ts';
import { compileGoals, openStore, printDiagnostics, pruneHistory, registry, requireGoalsDir } from '../context.ts';
import { loadFaultPolicyFile } from '../fault-policy-file.ts';
import type { CliContext } from '../context.ts';
import { goalsCommit } from '../git.ts';
import { goalTreeFingerprint, watchGoalTree } from '../goal-watch.ts';
import { EXIT, UsageError } from '../usage.ts';

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

/**
 * The daemon: continuous reconciliation until SIGTERM/SIGINT (exit 0).
 * Reloads the goals when their files change and on SIGHUP; a revision that
 * does not compile is logged and the last good graph keeps running.
 */
export async function run(ctx: CliContext, options: RunOptions): Promise<number> {
  const intervalMs = options.interval === undefined ? 60_000 : parseDuration(options.interval);
  if (intervalMs === undefined || intervalMs <= 0) throw new UsageError(`--interval takes a duration such as 500ms, 30s or 5m (got "${options.interval}")`);
  const listen = parseListen(options.listen ?? '127.0.0.1:7474');
  if (listen === undefined) throw new UsageError(`--listen takes HOST:PORT (got "${options.listen}")`);
  const concurrency = options.concurrency === undefined ? 10 : Number(options.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError('--concurrency takes a positive whole number');
  const debounceMs = options.debounce === undefined ? 300 : parseDuration(options.debounce);
  if (debounceMs === undefined) throw new UsageError('--debounce takes a duration such as 300ms');
  requireGoalsDir(ctx);
  let faults: { policy: FaultPolicy; circuitBreaker: CircuitBreakerConfig } | undefined;
  if (options.faultPolicy !== undefined) {
    const file = resolve(ctx.cwd, options.faultPolicy);
    if (!existsSync(file)) throw new UsageError(`fault policy file ${file} does not exist`);
    const loaded = await loadFaultPolicyFile(file, displayPath(file, ctx.cwd));
    if ('diagnostics' in loaded) {
      // Bad policy data changes nothing: the daemon does not start.
      printDiagnostics(ctx, loaded.diagnostics);
      return EXIT.failed;
    }
    faults = loaded;
  }

  const log = ctx.log;
  const store = openStore(ctx, { lock: true });
  const provisioner = new InfraNodeProvisioner({ backends: new Map() });
  let backendKey = '';
  const backendsById = (): ReadonlyMap<string, InfraBackend> => backendMap;
  let backendMap: ReadonlyMap<string, InfraBackend> = new Map();

  const controller = new Controller<InfraDesiredNodeSpec>({
    provisioner,
    store,
    log,
    codec: infraSpecCodec,
    intervalMs,
    concurrency,
    allowMassDeletion: options.allowMassDeletion,
    ...(faults === undefined ? {} : { faultPolicy: faults.policy, circuitBreaker: faults.circuitBreaker }),
    watch: (nodes, onChange) => watchBackends(backendsById(), nodes, onChange, log),
  });

  let loading: Promise<void> = Promise.resolve();
  /** `changed`: the goal watch saw the files change (it has taken their fingerprint); otherwise take it here, before reading. */
  const reload = (why: 'start' | 'SIGHUP' | 'goals changed'): Promise<void> => {
    loading = loading.then(async () => {
      if (why !== 'goals changed') goalWatch.accept(await goalTreeFingerprint(ctx.goalsDir));
      const commit = await goalsCommit(ctx.goalsDir);
      const loaded = await compileGoals(ctx).catch((err: unknown) => {
        // A missing or unreadable goal directory is a rejected revision like any other: nothing changes.
        const message = errorMessage(err);
        log.error({ text: message, commit, reason: why }, 'goals cannot be read; the last good graph keeps running');
        controller.rejectRevision([message]);
        return undefined;
      });
      if (loaded === undefined) return;
      const { graph, diagnostics, gates } = loaded.result;
      if (graph === undefined) {
        const lines = diagnostics.map(formatDiagnostic);
        for (const d of diagnostics) log.error({ file: d.file, line: d.line, col: d.col, code: d.code, severity: d.severity, text: d.message }, 'goal error');
        log.error({ errors: diagnostics.filter((d) => d.severity === 'error').length, commit, reason: why }, 'goal revision rejected; the last good graph keeps running');
        controller.rejectRevision(lines);
        return;
      }
      for (const d of diagnostics) log.warn({ file: d.file, line: d.line, col: d.col, code: d.code, text: d.message }, 'goal warning');
      const declarations = [...loaded.factory.backends.values()];
      const key = JSON.stringify(declarations);
      if (key !== backendKey) {
        const fresh = registry().instantiate(declarations, { cwd: ctx.cwd, log, stateDir: ctx.stateDir, env: ctx.env });
        const old = provisioner.replaceBackends(fresh);
        backendMap = fresh;
        backendKey = key;
        await Promise.allSettled([...old.values()].map((b) => b.close()));
      }
      await controller.setGraph(graph, { gates, commit });
      log.info({ nodes: graph.size, commit, reason: why }, 'goals loaded');
    });
    return loading;
  };

  // Goal files: watch the tree, debounce, reload; a change re-plans only what changed.
  const goalWatch = watchGoalTree(ctx.goalsDir, {
    pollMs: GOAL_POLL_MS,
    debounceMs,
    onChange: () => void reload('goals changed'),
    onError: (err) => log.warn({ text: errorMessage(err) }, 'cannot watch a goal directory; changes there are noticed by polling'),
  });
  await reload('start');
  controller.start();
  pruneHistory(ctx, store, options.history);
  const pruning = setInterval(() => pruneHistory(ctx, store, options.history), PRUNE_EVERY_MS);
  pruning.unref();

  const http = await startHttpServer(listen, {
    ready: () => (controller.ready ? { ready: true } : { ready: false, reason: controller.currentGraph === undefined ? 'no valid goals loaded' : 'first reconcile round in progress' }),
    status: () => ({ nodes: controller.nodes().map(shownRecord), queue: controller.queueStats() }),
    retry: (node) => controller.operatorRetry(node),
  });
  const address = `${http.address.family === 'IPv6' ? `[${http.address.address}]` : http.address.address}:${http.address.port}`;
  // `desiredstate retry` finds the running daemon here and asks it to release the node at once.
  store.setMeta('daemon.listen', address);

  return new Promise<number>((resolve) => {
    const onHup = (): void => void reload('SIGHUP');
    const shutdown = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      process.off('SIGHUP', onHup);
      clearInterval(pruning);
      goalWatch.close();
      http.server.close();
      http.server.closeAllConnections();
      void (async () => {
        await loading.catch(() => undefined);
        await controller.stop(10_000);
        store.setMeta('daemon.listen', null);
        await Promise.allSettled([...backendMap.values()].map((b) => b.close()));
        store.close();
        log.info('stopped');
        resolve(EXIT.ok);
      })();
    };
    process.on('SIGHUP', onHup);
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    // Announced only now: a SIGTERM sent as soon as this line appears finds its handler.
    log.info({ address, intervalMs }, 'listening');
  });
}

/** Starts each backend's own change watch over its nodes. */
function watchBackends(
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
  for (const [id, list] of byBackend) {
    const b = backends.get(id);
    if (b?.watch !== undefined) stops.push(b.watch(list, onChange, log.child({ backend: id })));
  }
  return () => {
    for (const s of stops) s();
  };
}
