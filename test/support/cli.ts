import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll } from 'vitest';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The JavaScript launcher, run as `node bin/desiredstate.js` (Node 24: vitest's own executable). */
export const bin = join(repoRoot, 'bin/desiredstate.js');
/**
 * The launcher users run (`npx desiredstate`, `npm start`): Node from the start-up snapshot while
 * it matches the sources, else the JavaScript launcher. `cli` and the daemon harness run it, so the
 * suite runs the commands as users start them.
 */
export const launcher = join(repoRoot, 'bin/desiredstate');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the real CLI through `launcher` and collects its output; as `user` when given (the tests must run as root). */
export function cli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; user?: { uid: number; gid: number } | undefined } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(launcher, args, {
      cwd: options.cwd ?? repoRoot,
      env: cleanEnv(options.env),
      ...options.user,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What `plan` printed and how it exited, and its `--format json` document (which must exit the same). */
export async function planBoth(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; text: string; json: PlanDocument }> {
  const text = await cli(['plan', ...args], { env });
  const json = await cli(['plan', '--format', 'json', ...args], { env });
  if (json.code !== text.code) throw new Error(`plan exited ${text.code}, plan --format json ${json.code}: ${json.stderr}`);
  return { code: text.code, text: text.stdout, json: JSON.parse(json.stdout) as PlanDocument };
}

/** The parts of `plan --format json` tests read. */
export interface PlanDocument {
  readonly entries: readonly { readonly id: string; readonly planned: { readonly action: string } & Readonly<Record<string, unknown>> }[];
  readonly counts: Readonly<Record<string, number>>;
}

// Every temp project of a test file is removed after its tests. Registered when this module is
// first imported, so before any hook of the file: it runs after them (hooks unwind as a stack),
// once `trackDaemons` has stopped the daemons that worked in them.
const projects: string[] = [];
afterAll(() => {
  for (const dir of projects) rmSync(dir, { recursive: true, force: true });
});

/** A temp project: `goals/` with a local Backend rooted at `<dir>/root`, state in `<dir>/state`; removed after the file's tests. */
export function tempProject(prefix: string): { dir: string; goals: string; state: string; root: string; write(file: string, text: string): void; args: string[] } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  projects.push(dir);
  const goals = join(dir, 'goals');
  mkdirSync(goals);
  return {
    dir,
    goals,
    state: join(dir, 'state'),
    root: join(dir, 'root'),
    write: (file, text) => writeFileSync(join(goals, file), text),
    args: ['--goals', goals, '--state', join(dir, 'state')],
  };
}

/**
 * A memory Backend `mem` with `config` (YAML lines under `config:`, already indented) and a Goal
 * `app` whose nodes use it by default, up to and including `nodes:`; the caller appends the node lines.
 */
export function memoryGoalHead(config: string): string {
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: mem }
spec:
  type: memory
  config:
${config}---
${goalHead('  defaults: { backend: mem }\n')}`;
}

/** A Goal `app` up to its `nodes:` line, for node lines to follow; `spec`: lines of its spec before `nodes` (indented two spaces). */
export function goalHead(spec = ''): string {
  return `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
${spec}  nodes:
`;
}

/** A local Backend document `name` (default `local`) rooted at `root`. */
export function localBackend(root: string, name = 'local'): string {
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ${name} }
spec:
  type: local
  config: { root: ${JSON.stringify(root)} }
`;
}

/**
 * An exec Backend named `exec` and a Goal (`name`, default `infra`) whose nodes use it by default,
 * up to and including `nodes:`; the caller appends the node lines. `prune: true` when asked; `selfHeal` when given.
 */
export function execGoalHead(options: { name?: string; prune?: boolean; selfHeal?: boolean; /** The Backend's config map, as YAML. */ config?: string } = {}): string {
  return `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: exec }
spec: { type: exec${options.config === undefined ? '' : `, config: ${options.config}`} }
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: ${options.name ?? 'infra'} }
spec:
  defaults: { backend: exec }
${options.prune === true ? '  prune: true\n' : ''}${options.selfHeal === undefined ? '' : `  selfHeal: ${options.selfHeal}\n`}  nodes:
`;
}

/**
 * An executable shell script `resource` in `dir`, for exec nodes' commands: `set -eu`, `$dir` set to
 * `dir`, then `body` (usually a `case "$1" in read) … create) … esac` over files in `$dir`). Its path.
 */
export function shellResource(dir: string, body: string): string {
  const script = join(dir, 'resource');
  writeFileSync(script, `#!/bin/sh\nset -eu\ndir=${JSON.stringify(dir)}\n${body}`);
  chmodSync(script, 0o755);
  return script;
}

/** A project of exec nodes that are files (`filesProject`): its goal, the calls its commands got, and whether a node's file is there. */
export type FilesProject = ReturnType<typeof tempProject> & { goal(ids: readonly string[]): void; calls(): string[]; has(id: string): boolean };

/**
 * A project whose exec nodes (goal `infra`, prune, each `deletionPolicy: Delete`, input `{}`) are files `res-ID`
 * in its directory (the Backend's `cwd`, so that it is the same backend whatever directory a command runs
 * from), made by one `shellResource` that logs each call as `VERB ID` in `calls.log`; `deleteBody`:
 * its delete (shell, `$id` the node's id). `goal` writes the goal with those node ids.
 */
export function filesProject(prefix: string, deleteBody: string): FilesProject {
  const p = tempProject(prefix);
  const script = shellResource(
    p.dir,
    `id=$(cat | sed -n 's/.*"id":"\\([a-z]*\\)".*/\\1/p')
echo "$1 $id" >> "$dir/calls.log"
case "$1" in
  read) if [ -f "$dir/res-$id" ]; then echo '{"exists":true,"state":{}}'; else echo '{"exists":false}'; fi ;;
  create) touch "$dir/res-$id"; echo '{"outputs":{}}' ;;
  delete)
${deleteBody} ;;
esac
`,
  );
  const commands = `{ read: [${JSON.stringify(script)}, read], create: [${JSON.stringify(script)}, create], delete: [${JSON.stringify(script)}, delete] }`;
  const goal = (ids: readonly string[]): void =>
    p.write('goals.yaml', `${execGoalHead({ prune: true, config: `{ cwd: ${JSON.stringify(p.dir)} }` })}${ids.map((id) => `    - { id: ${id}, type: generic.resource, deletionPolicy: Delete, spec: { commands: ${commands}, input: {} } }\n`).join('')}`);
  return Object.assign(p, { goal, calls: () => logLines(join(p.dir, 'calls.log')), has: (id: string) => existsSync(join(p.dir, `res-${id}`)) });
}

/** An exec node `id` (after `execGoalHead`) whose read and create run `script read <id>` and `script create <id>`, with `input` (inline YAML). */
export function execNode(id: string, script: string, input: string): string {
  return `    - id: ${id}
      type: generic.resource
      spec: { commands: { read: [${script}, read, ${id}], create: [${script}, create, ${id}] }, input: ${input} }
`;
}

/**
 * A `shellResource` whose create is slow: a resource kept in `$dir/resource.json`, every create's start
 * and end logged with its pid in `$dir/creates.log`, and between them a `sleep` of `slow` seconds (unless
 * `$dir/fast` exists), a child of the script in its process group, its pid in `$dir/sleep.pid`. `outputs`:
 * the JSON object read and create print as outputs. Its path.
 */
export function slowCreateResource(dir: string, slow: number, outputs: string): string {
  return shellResource(
    dir,
    `state="$dir/resource.json"
req=$(cat)
case "$1" in
  read)
    if [ -f "$state" ]; then printf '{"exists":true,"state":%s,"outputs":${outputs}}\\n' "$(cat "$state")"; else echo '{"exists":false}'; fi ;;
  create)
    echo "start $$" >> "$dir/creates.log"
    # A slow API: nothing exists until it answers.
    if [ ! -f "$dir/fast" ]; then sleep ${slow} & echo $! > "$dir/sleep.pid"; wait; fi
    printf '{"size":"large"}' > "$state"
    echo "done $$" >> "$dir/creates.log"
    echo '{"outputs":${outputs}}' ;;
esac
`,
  );
}

/** The lines a test's script appended to `file` (none while it does not exist). */
export function logLines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

/** The rows of `sql` on the state file in `state`, opened read-only: what the CLI recorded. */
export function stateRows(state: string, sql: string): unknown[] {
  const db = new Database(join(state, 'state.db'), { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

/** A local Backend rooted at `root` and a Goal `app` with one file node `conf` (`app.conf`, mode 0644) holding `content`. */
export function oneFileGoal(root: string, content: string): string {
  return `${localBackend(root)}---
${goalHead('  defaults: { backend: local }\n')}    - id: conf
      type: local.file
      spec: { path: app.conf, content: ${JSON.stringify(content)}, mode: "0644" }
`;
}

/**
 * For a project on `oneFileGoal`: `apply`, then for each edit, write it into app.conf by hand and `apply`
 * again (which reports it as drift and puts the file back). Throws if an apply does not exit 0.
 */
export async function applyWithEdits(p: { root: string; args: string[] }, edits: readonly string[]): Promise<void> {
  const apply = async (): Promise<void> => {
    const r = await cli(['apply', '--yes', ...p.args]);
    if (r.code !== 0) throw new Error(`apply exited ${r.code}: ${r.stderr}`);
  };
  await apply();
  for (const edit of edits) {
    writeFileSync(join(p.root, 'app.conf'), edit);
    await apply();
  }
}

/** A Goal `app` on the `local` backend with one directory node `web-root` (`www`, mode 0755). */
export const ONE_DIRECTORY_GOAL = `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  defaults: { backend: local }
  nodes:
    - id: web-root
      type: local.directory
      spec: { path: www, mode: "0755" }
`;

/** The environment without our own variables (a developer's shell must not change the tests), plus `extra`. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('DESIREDSTATE_')) delete env[k];
  return { ...env, ...extra };
}
