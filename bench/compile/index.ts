/**
 * Goal compilation at scale: generated goal sets of 1k, 10k and 100k nodes
 * (local.file, local.directory, postgres.role, postgres.database,
 * k8s.configmap, aws.s3.bucket; ~3 dependencies each, a third of them as
 * `${nodes.<id>.outputs.<key>}` references; files of at most 1000 nodes),
 * each loaded and compiled in a fresh process, without and with a realistic
 * policy.
 *
 *   npx node bench/compile/index.ts                        # 1k, 10k, 100k
 *   npx node bench/compile/index.ts --sizes 1000,20000
 *   npx node bench/compile/index.ts --policy path/to/policies   # your Policy documents instead of the built-in one
 *   npx node bench/compile/index.ts --no-policy
 *   npx node bench/compile/index.ts --keep                 # keep the generated goals (path printed)
 *
 * Prints, per size and mode: load+compile wall time and CPU time (measured
 * in the child, around loadGoalSet), the child's whole wall time (with Node
 * start-up and imports) and its peak RSS. Bar (issue 2): 100k nodes in under 5 s and 1 GiB.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { PolicyEngine } from '../../src/infra/index.ts';
import { seededRng } from '../../src/runtime/index.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const policyModule = join(repoRoot, 'src/infra/policy/index.ts');
const FILE_NODES = 1000;
const TYPES = ['local.file', 'local.directory', 'postgres.role', 'postgres.database', 'k8s.configmap', 'aws.s3.bucket'] as const;

/** Deterministic PRNG, so every run compiles the same goals. */
const prng = seededRng;

const idOf = (i: number): string => `${TYPES[i % TYPES.length]!.replace(/\./g, '-')}-${i}`;

/** One node's YAML, indented for `spec.nodes`. */
function nodeYaml(i: number, random: () => number): string {
  const type = TYPES[i % TYPES.length]!;
  // ~3 dependencies on recent earlier nodes (often in another file): two dependsOn, one reference.
  const deps = new Set<number>();
  for (let k = 0; k < 3 && i > 0; k++) deps.add(Math.max(0, i - 1 - Math.floor(random() * Math.min(i, 60))));
  const list = [...deps];
  const ref = list.length === 3 ? list.pop() : undefined;
  const dependsOn = list.length > 0 ? `\n      dependsOn: [${list.map(idOf).join(', ')}]` : '';
  // A key the referenced node has (checked at compile): a local path, else the memory backend's name.
  const refText = ref === undefined ? '' : `\${nodes.${idOf(ref)}.outputs.${TYPES[ref % TYPES.length]!.startsWith('local.') ? 'path' : 'name'}}`;
  const head = `    - id: ${idOf(i)}\n      type: ${type}`;
  switch (type) {
    case 'local.file':
      return `${head}${dependsOn}
      labels: { component: config }
      spec:
        path: "\${goal.name}/conf/app-${i}.toml"
        mode: "0640"
        content: |
          # generated for \${goal.name} (\${goal.environment})
          [server]
          port = ${8000 + (i % 1000)}
          upstream = "${refText}"
`;
    case 'local.directory':
      return `${head}${dependsOn}
      spec: { path: "\${goal.name}/data/d${i}", mode: "0750" }
`;
    case 'postgres.role':
      return `${head}
      backend: pg${dependsOn}
      deletionPolicy: Delete
      spec:
        name: dev_role_${i}
        login: true
        connectionLimit: 20
        validUntil: infinity
        password: { fromEnv: ROLE_${i}_PASSWORD }
        memberOf: [dev_readers]
`;
    case 'postgres.database':
      return `${head}
      backend: pg${dependsOn}
      spec: { name: dev_db_${i}, owner: dev_role_${i - 1}, encoding: UTF8, connectionLimit: 50 }
`;
    case 'k8s.configmap':
      return `${head}
      backend: k8s${dependsOn}
      spec:
        name: cm-${i}
        namespace: apps
        labels: { app: web }
        data: { LOG_LEVEL: info, UPSTREAM: "${refText}", ENV: "\${goal.environment}" }
`;
    case 'aws.s3.bucket':
      return `${head}
      backend: aws${dependsOn}
      spec:
        name: acme-dev-bucket-${i}
        region: eu-west-1
        versioning: true
        encryption: "aws:kms"
        tags: { owner: data-platform }
`;
  }
}

const BACKENDS = ['pg', 'k8s', 'aws']
  .map((name) => `apiVersion: desiredstate/v1\nkind: Backend\nmetadata: { name: ${name} }\nspec: { type: memory }\n`)
  .join('---\n');

/** A realistic Policy: the GOAL-FORMAT.md example (naming, labels, CEL rules, defaults) plus the baseline pack. */
const POLICY = `apiVersion: desiredstate/v1
kind: Policy
metadata: { name: acme-standards }
spec:
  blockAt: high
  include: [baseline]
  naming:
    - types: [postgres.role, postgres.database]
      field: name
      pattern: "^{env}_[a-z0-9_]+$"
      severity: { default: medium, prod: high }
  requiredLabels:
    - key: team
      severity: { default: high }
    - key: cost-center
      pattern: "^CC-[0-9]{4}$"
      severity: { default: high }
  rules:
    - id: login-roles-capped
      description: Login roles carry a connection limit.
      types: [postgres.role]
      when: "spec.login == true"
      require: "has(spec.connectionLimit) && spec.connectionLimit > 0"
      severity: { default: low, prod: high }
      frameworks: [SOC2, PCI-DSS]
    - id: buckets-versioned
      description: Buckets keep versions.
      types: [aws.s3.bucket]
      require: "spec.versioning == true && spec.encryption != 'none'"
      severity: { default: medium }
  defaults:
    - types: [postgres.role]
      environments: [prod]
      set: { connectionLimit: 20 }
`;

function generate(dir: string, size: number): void {
  const random = prng(size);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'backends.yaml'), BACKENDS);
  for (let start = 0, f = 0; start < size; start += FILE_NODES, f++) {
    const parts: string[] = [];
    for (let i = start; i < Math.min(size, start + FILE_NODES); i++) parts.push(nodeYaml(i, random));
    const sub = join(dir, `team-${f % 10}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(
      join(sub, `goal-${String(f).padStart(4, '0')}.yaml`),
      `apiVersion: desiredstate/v1\nkind: Goal\nmetadata:\n  name: app-${f}\n  environment: dev\n  labels: { team: data, cost-center: CC-${String(1000 + (f % 9000))} }\nspec:\n  defaults: { backend: local }\n  nodes:\n${parts.join('')}`,
    );
  }
}

interface ChildResult {
  readonly compileMs: number;
  /** CPU time (user + system) of load+compile: less sensitive than wall time to a busy machine. */
  readonly cpuMs: number;
  readonly maxRssBytes: number;
  readonly nodes: number;
  readonly errors: number;
  readonly firstError?: string;
  readonly policy: boolean;
}

/** In the child: load and compile once, print the figures as JSON. */
async function child(goalsDir: string, withPolicy: boolean): Promise<void> {
  const { loadGoalSet } = await import('../../src/cli/load.ts');
  const { BackendRegistry } = await import('../../src/infra/index.ts');
  const { builtinBackendFactories } = await import('../../src/backends/index.ts');
  const { formatDiagnostic } = await import('../../src/runtime/index.ts');
  let policy: PolicyEngine | undefined;
  if (withPolicy) {
    const mod = (await import(policyModule)) as { CelPolicyEngine?: new () => PolicyEngine };
    if (mod.CelPolicyEngine === undefined) throw new Error('src/infra/policy/index.ts does not export CelPolicyEngine');
    policy = new mod.CelPolicyEngine();
  }
  const registry = new BackendRegistry(builtinBackendFactories);
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const { result } = await loadGoalSet({ goalsDir, cwd: goalsDir, registry, policy });
  const compileMs = performance.now() - start;
  const cpu = process.cpuUsage(cpu0);
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  const out: ChildResult = {
    compileMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    nodes: result.graph?.size ?? 0,
    errors: errors.length,
    firstError: errors[0] === undefined ? undefined : formatDiagnostic(errors[0]),
    policy: policy !== undefined,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function policyAvailable(): boolean {
  return existsSync(policyModule);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '1000,10000,100000' },
      policy: { type: 'string' },
      'no-policy': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      child: { type: 'string' },
      'with-policy': { type: 'boolean', default: false },
    },
  });
  if (values.child !== undefined) return child(values.child, values['with-policy']);

  const sizes = values.sizes.split(',').map(Number);
  const root = mkdtempSync(join(tmpdir(), 'ds-bench-compile-'));
  let policyModes: boolean[] = [false];
  if (!values['no-policy']) {
    if (policyAvailable()) policyModes = [false, true];
    else console.log('policy: not available (src/infra/policy/index.ts with CelPolicyEngine not found); compiling without');
  }
  const rows: string[][] = [];
  try {
    for (const size of sizes) {
      const base = join(root, `n${size}`);
      generate(base, size);
      for (const withPolicy of policyModes) {
        let dir = base;
        if (withPolicy) {
          dir = `${base}-policy`;
          cpSync(base, dir, { recursive: true });
          if (values.policy !== undefined) {
            for (const f of readdirSync(values.policy)) if (/\.ya?ml$/.test(f)) cpSync(join(values.policy, f), join(dir, `policy-${f}`));
          } else {
            writeFileSync(join(dir, 'policy.yaml'), POLICY);
          }
        }
        const started = performance.now();
        const run = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir, ...(withPolicy ? ['--with-policy'] : [])], {
          cwd: repoRoot,
          encoding: 'utf8',
          maxBuffer: 16 * 1024 * 1024,
        });
        const wallMs = performance.now() - started;
        const line = run.stdout.trim().split('\n').at(-1) ?? '';
        if (run.status !== 0 || !line.startsWith('{')) {
          console.error(`size ${size}${withPolicy ? ' with policy' : ''}: child failed (${run.status})\n${run.stderr}`);
          process.exitCode = 1;
          continue;
        }
        const r = JSON.parse(line) as ChildResult;
        // The generated goals are valid under the built-in policy: an error there, or a graph short of
        // its nodes, is a compile that stopped early, whose time says nothing. Your own policies may block.
        const mine = withPolicy && values.policy !== undefined;
        if (r.errors > 0) console.log(`  ${mine ? 'note' : 'error'}: ${size}${withPolicy ? ' +policy' : ''}: ${r.errors} errors, first: ${r.firstError ?? ''}`);
        if ((r.errors > 0 && !mine) || (r.errors === 0 && r.nodes !== size)) {
          if (r.errors === 0) console.error(`size ${size}${withPolicy ? ' with policy' : ''}: the graph has ${r.nodes} nodes, not ${size}`);
          process.exitCode = 1;
        }
        rows.push([
          String(size),
          withPolicy ? (values.policy ?? 'built-in') : 'none',
          `${r.compileMs.toFixed(0)} ms`,
          `${r.cpuMs.toFixed(0)} ms`,
          `${wallMs.toFixed(0)} ms`,
          `${(r.maxRssBytes / 1024 / 1024).toFixed(0)} MiB`,
          r.errors === 0 ? String(r.nodes) : `${r.errors} errors`,
        ]);
      }
    }
  } finally {
    if (values.keep) console.log(`goals kept in ${root}`);
    else rmSync(root, { recursive: true, force: true });
  }
  const header = ['nodes', 'policy', 'load+compile', 'its CPU time', 'process wall', 'peak RSS', 'graph nodes'];
  console.log(`load average ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} CPUs (wall times stretch on a busy machine; CPU time less so)`);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]): string => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log(fmt(header));
  for (const r of rows) console.log(fmt(r));
}

await main();
