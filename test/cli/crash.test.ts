import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRng } from '../../src/runtime/index.ts';
import { cli, localBackend, tempProject } from '../support/cli.ts';
import { Daemon, eventually } from '../support/daemon.ts';

/**
 * The kill -9 test: the daemon on 240 local-backend nodes (directories and
 * the files inside them), killed with SIGKILL at random moments more than 20
 * times, restarted each time, then run to convergence. No node is ever
 * created twice, the state file is intact, and the world is as desired.
 */

const DIRS = 40;
const FILES_PER_DIR = 5;
const KILLS = 22;
// Reproducible: CRASH_SEED=<n> replays a failing run.
const seed = Number(process.env.CRASH_SEED ?? Date.now() % 1_000_000);
const rng = seededRng(seed);

interface Want {
  readonly id: string;
  readonly path: string;
  readonly kind: 'dir' | 'file';
  readonly mode: number;
  readonly content?: string;
}

const wants: Want[] = [];
const nodes: string[] = [];
for (let d = 0; d < DIRS; d++) {
  const dir = `d${d}`;
  wants.push({ id: dir, path: `srv/${dir}`, kind: 'dir', mode: d % 2 === 0 ? 0o755 : 0o750 });
  nodes.push(`    - id: ${dir}\n      type: local.directory\n      spec: { path: srv/${dir}, mode: "${d % 2 === 0 ? '0755' : '0750'}" }`);
  for (let f = 0; f < FILES_PER_DIR; f++) {
    const id = `${dir}-f${f}`;
    const content = `node ${id}\n${'x'.repeat(64 * (f + 1))}\n`;
    const mode = f % 3 === 0 ? 0o600 : f % 3 === 1 ? 0o640 : 0o644;
    wants.push({ id, path: `srv/${dir}/f${f}.txt`, kind: 'file', mode, content });
    nodes.push(`    - id: ${id}\n      type: local.file\n      dependsOn: [${dir}]\n      spec: { path: srv/${dir}/f${f}.txt, mode: "0${mode.toString(8)}", content: ${JSON.stringify(content)} }`);
  }
}

const p = tempProject('ds-crash-');
p.write('backend.yaml', localBackend(p.root));
p.write('fleet.yaml', `apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: fleet }\nspec:\n  nodes:\n${nodes.join('\n')}\n`);
afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

const runArgs = ['--listen', '127.0.0.1:0', '--interval', '60s', '--log-level', 'info', ...p.args];

describe('crash safety: kill -9 at random moments', () => {
  it(`${wants.length} nodes, ${KILLS} kills: no duplicate creation, intact state, convergence`, async () => {
    expect(wants.length).toBeGreaterThanOrEqual(200);
    let killedMidWork = 0;
    for (let k = 0; k < KILLS; k++) {
      const d = new Daemon(runArgs, { cwd: p.dir });
      // Half the kills count from the spawn (some land during start-up), half from the moment reconciling begins.
      const fromLoad = k % 2 === 1;
      if (fromLoad) await d.waitFor((l) => l.msg === 'goals loaded', 30_000).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 50 + Math.floor(rng() * 550)));
      if (d.lines.some((l) => l.msg === 'node created' || l.msg === 'local resource created')) killedMidWork++;
      d.kill('SIGKILL');
      const exit = await d.exited;
      expect(exit.signal, `seed ${seed}, kill ${k}: ${d.stderr.slice(-2000)}`).toBe('SIGKILL');
    }
    // Some kills landed while creates were going on (otherwise the test proves nothing).
    expect(killedMidWork, `seed ${seed}`).toBeGreaterThan(0);

    // The final run, to convergence.
    const d = new Daemon(runArgs, { cwd: p.dir });
    const port = await d.port(30_000);
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200, 60_000, '/readyz 200');
    d.kill('SIGTERM');
    expect((await d.exited).code).toBe(0);

    const db = new Database(join(p.state, 'state.db'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const ops = db.prepare("SELECT id, node, outcome FROM operations WHERE op = 'create' ORDER BY id").all() as { id: number; node: string; outcome: string | null }[];
      const settled = new Map<string, number>();
      const doneCount = new Map<string, number>();
      for (const op of ops) {
        const first = settled.get(op.node);
        // No create is ever begun for a node after one of its creates ended done or adopted.
        expect(first, `seed ${seed}: create ${op.id} of ${op.node} begun after create ${first} had settled`).toBeUndefined();
        if (op.outcome === 'done' || op.outcome === 'adopted') settled.set(op.node, op.id);
        if (op.outcome === 'done') doneCount.set(op.node, (doneCount.get(op.node) ?? 0) + 1);
      }
      expect([...doneCount.values()].every((n) => n <= 1), `seed ${seed}`).toBe(true);
      // Nothing left pending after a clean stop.
      expect(db.prepare('SELECT count(*) AS n FROM operations WHERE finished_at IS NULL').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }

    const status = JSON.parse((await cli(['status', '--format', 'json', ...p.args], { cwd: p.dir })).stdout) as { nodes: { id: string; status: string }[] };
    expect(status.nodes).toHaveLength(wants.length);
    expect(status.nodes.filter((n) => n.status !== 'ready')).toEqual([]);
    for (const w of wants) {
      const abs = join(p.root, w.path);
      const st = statSync(abs);
      expect(st.isDirectory(), w.id).toBe(w.kind === 'dir');
      expect(st.mode & 0o777, w.id).toBe(w.mode);
      if (w.content !== undefined) expect(readFileSync(abs, 'utf8'), w.id).toBe(w.content);
    }
    // What a kill left half-written (a temp file of a dead writer) is gone: a later run wrote into its directory.
    const debris = (readdirSync(p.root, { recursive: true }) as string[]).filter((f) => /\.ds-\d+-[0-9a-z]+\.tmp$/.test(f));
    expect(debris, `seed ${seed}`).toEqual([]);
  }, 115_000);
});
