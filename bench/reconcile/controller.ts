/**
 * What the reconcile benchmarks share: a Controller over one backend, with the
 * real SQLite store, in a temp directory — the daemon's engine, without its
 * CLI, HTTP server and file watching of the goals.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { Controller, SqliteStateStore } from '../../src/runtime/index.ts';
import type { DesiredGraph } from '../../src/runtime/index.ts';
import { infraSpecCodec, InfraNodeProvisioner } from '../../src/infra/index.ts';
import type { InfraBackend, InfraDesiredNodeSpec } from '../../src/infra/index.ts';

export interface BenchController {
  readonly dir: string;
  readonly store: SqliteStateStore;
  readonly controller: Controller<InfraDesiredNodeSpec>;
  /** Sets the graph, starts, and reconciles until every node is ready; resolves with the milliseconds it took. */
  converge(graph: DesiredGraph<InfraDesiredNodeSpec>): Promise<number>;
  /** One timed `reconcileAll()`, in milliseconds. */
  pass(): Promise<number>;
  /** Stops the controller, closes the store, removes the directory. */
  close(): Promise<void>;
}

/** `backend` is made in the temp directory (`dir`) under the id `id`; passes are an hour apart unless driven. */
export function benchController(prefix: string, id: string, backend: (dir: string, log: Logger) => InfraBackend): BenchController {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const log = pino({ level: 'silent' });
  const store = SqliteStateStore.open({ path: join(dir, 'state.db'), lock: true });
  const controller = new Controller<InfraDesiredNodeSpec>({
    provisioner: new InfraNodeProvisioner({ backends: new Map([[id, backend(dir, log)]]) }),
    store,
    log,
    codec: infraSpecCodec,
    intervalMs: 3_600_000,
    concurrency: 10,
  });
  const timed = async (work: () => Promise<void>): Promise<number> => {
    const t = performance.now();
    await work();
    return performance.now() - t;
  };
  return {
    dir,
    store,
    controller,
    converge: (graph) =>
      timed(async () => {
        await controller.setGraph(graph, {});
        controller.start();
        await controller.whenIdle();
        // Dependents are queued as their dependencies become ready: go on until every node is ready.
        while (controller.nodes().some((r) => r.status !== 'ready')) await controller.reconcileAll();
      }),
    pass: () => timed(() => controller.reconcileAll()),
    async close() {
      await controller.stop(1000);
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
