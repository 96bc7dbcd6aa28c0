/**
 * `npm run bench`: every benchmark that needs nothing installed by hand, one
 * after another, each printing its own figures; with WITH_PEERS=1 also the
 * side-by-side runs against CFEngine/Puppet/Ansible and psql, which need the
 * peer harness installed once as root (`../shared/bench/peers/bin/install.sh`).
 * A benchmark that fails stops the run with its exit status.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const node = process.execPath;
const runs: [string, string[]][] = [
  ['compile', [node, 'bench/compile/index.ts']],
  ['memory backend', [node, 'bench/reconcile/memory.ts']],
  ['local files in the daemon', [node, 'bench/reconcile/files.ts']],
  ...(process.env.WITH_PEERS === '1'
    ? ([
        ['local files vs peers', ['bash', 'bench/reconcile/peers.sh']],
        ['PostgreSQL vs psql and Ansible', [node, 'bench/postgres/index.ts']],
      ] as [string, string[]][])
    : []),
];

for (const [name, [cmd, ...args]] of runs) {
  console.log(`\n# ${name}: ${[cmd === node ? 'node' : cmd, ...args].join(' ')}\n`);
  const r = spawnSync(cmd!, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`bench: ${name} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status ?? 1);
  }
}
if (process.env.WITH_PEERS !== '1') console.log('\n(WITH_PEERS=1 npm run bench adds the runs beside CFEngine, Puppet, Ansible and psql; see bench/README.md)');
