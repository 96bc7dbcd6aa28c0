/**
 * Steady-state reconcile pass over N in-sync nodes on the memory backend,
 * inside the daemon's Controller with the real SQLite state store.
 *
 *   npx node bench/reconcile/memory.ts            # 10k and 100k, each in a fresh process
 *   npx node bench/reconcile/memory.ts --one 100000
 *
 * Prints, per size: converge time, steady-state pass times (min / median of 5)
 * and peak RSS. Bar (issue 3): 100k nodes under 2 s per pass and under 1 GiB.
 */
import { spawnSync } from 'node:child_process';
import { DesiredGraph } from '../../src/runtime/index.ts';
import type { DesiredNode } from '../../src/runtime/index.ts';
import { desiredNodeSpec } from '../../src/infra/index.ts';
import type { InfraDesiredNodeSpec, InfraNodeSpec } from '../../src/infra/index.ts';
import { MemoryBackend } from '../../src/backends/memory/index.ts';
import { benchController } from './controller.ts';

function specFor(i: number): InfraNodeSpec {
  switch (i % 4) {
    case 0:
      return { type: 'local.file', path: `app/${i}/config.toml`, content: `id = ${i}\nport = ${8000 + (i % 1000)}\n`, mode: '0644' };
    case 1:
      return { type: 'postgres.role', name: `role_${i}`, login: true, superuser: false, createdb: false, createrole: false, inherit: true, replication: false, bypassRls: false, connectionLimit: 10, memberOf: [] };
    case 2:
      return { type: 'k8s.configmap', name: `cm-${i}`, namespace: 'apps', data: { key: `value-${i}` }, labels: { team: 'bench' } };
    default:
      return { type: 'aws.s3.bucket', name: `bucket-${i}`, region: 'eu-west-1', versioning: true, encryption: 'AES256', publicAccess: false, tags: { team: 'bench' } };
  }
}

export function buildGraph(n: number): DesiredGraph<InfraDesiredNodeSpec> {
  const nodes: DesiredNode<InfraDesiredNodeSpec>[] = [];
  for (let i = 0; i < n; i++) {
    // About three dependencies each, on nodes of the previous layer of 1000: a realistic, acyclic
    // fan-in that is wide rather than one long chain.
    const layer = Math.floor(i / 1000);
    const deps = layer === 0 ? [] : [1, 2, 3].map((k) => ({ on: `n${(layer - 1) * 1000 + ((i * 7 + k * 131) % 1000)}`, source: { file: 'bench.yaml', line: i + 1, col: 1 }, implicit: false }));
    nodes.push({
      id: `n${i}`,
      goal: 'bench',
      spec: desiredNodeSpec(specFor(i), 'mem', { team: 'bench' }),
      dependsOn: deps,
      settings: { selfHeal: true, prune: false, deletionPolicy: 'Orphan', ignoreFields: [] },
      source: { file: 'bench.yaml', line: i + 1, col: 1 },
    });
  }
  const built = DesiredGraph.build(nodes);
  if (!built.ok) throw new Error('bench graph does not build');
  return built.graph;
}

async function one(n: number): Promise<Record<string, number>> {
  let backend: MemoryBackend | undefined;
  const bench = benchController('ds-bench-', 'mem', (_dir, log) => (backend = new MemoryBackend({ latencyMs: 0, faults: [], seed: 1 }, { id: 'mem', log })));
  const converge = await bench.converge(buildGraph(n));
  const passes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const observedBefore = backend!.observedNodes;
    const writesBefore = backend!.calls.create + backend!.calls.update + backend!.calls.delete;
    passes.push(await bench.pass());
    // A pass that skipped nodes, or wrote any, would be timing other work than the steady state's.
    const observed = backend!.observedNodes - observedBefore;
    const writes = backend!.calls.create + backend!.calls.update + backend!.calls.delete - writesBefore;
    if (observed !== n || writes !== 0) throw new Error(`pass ${i + 1} observed ${observed} of ${n} nodes and made ${writes} writes`);
  }
  await bench.close();
  passes.sort((a, b) => a - b);
  return { nodes: n, convergeMs: converge, passMinMs: passes[0]!, passMedianMs: passes[2]!, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
}

const args = process.argv.slice(2);
if (args[0] === '--one') {
  const r = await one(Number(args[1]));
  process.stdout.write(`${JSON.stringify(r)}\n`);
} else {
  const sizes = args.length > 0 ? args.map(Number) : [10_000, 100_000];
  console.log('steady-state reconcile pass, memory backend, Controller + SQLite store (each size in a fresh process)');
  console.log('nodes     converge_s  pass_min_ms  pass_median_ms  peak_rss_MiB');
  for (const n of sizes) {
    const child = spawnSync(process.execPath, [import.meta.filename, '--one', String(n)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (child.status !== 0) {
      console.error(child.stderr);
      process.exit(1);
    }
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as Record<string, number>;
    console.log(`${String(r.nodes).padEnd(9)} ${(r.convergeMs! / 1000).toFixed(2).padStart(10)}  ${r.passMinMs!.toFixed(0).padStart(11)}  ${r.passMedianMs!.toFixed(0).padStart(14)}  ${r.peakRssMiB!.toFixed(0).padStart(12)}`);
  }
}
