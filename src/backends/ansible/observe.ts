import { lineOps, maskSecretLines, tailLines } from '../../infra/index.ts';
import type { ProcessOutcome } from '../../infra/index.ts';
import { assertNever, fault, FaultError, isJsonObject } from '../../runtime/index.ts';
import type { Fault, FieldDiff, Outputs } from '../../runtime/index.ts';

/**
 * Pure: ansible-playbook's JSON report (the `ansible.posix.json` stdout
 * callback) and exit status, turned into task changes, outputs and
 * classified faults. No I/O, no text scraping.
 */

/** One host's result of one task, as the JSON callback records it (the fields we read). */
export interface HostResult {
  readonly changed?: boolean;
  readonly failed?: boolean;
  readonly skipped?: boolean;
  readonly unreachable?: boolean;
  readonly msg?: unknown;
  /** What a module that failed to run (`MODULE FAILURE`) printed on stderr. */
  readonly module_stderr?: unknown;
  /** Set when a condition skipped the task; a skip without it is check mode's (the module cannot simulate). */
  readonly skip_reason?: unknown;
  readonly diff?: unknown;
  readonly results?: readonly HostResult[];
}

/** The JSON callback's report. */
export interface PlaybookReport {
  readonly plays: readonly {
    readonly play: { readonly name: string };
    readonly tasks: readonly { readonly task: { readonly name: string }; readonly hosts: Readonly<Record<string, HostResult>> }[];
  }[];
  readonly stats: Readonly<Record<string, HostStats>>;
}

export interface HostStats {
  readonly ok: number;
  readonly changed: number;
  readonly failures: number;
  readonly unreachable: number;
  readonly skipped: number;
  readonly rescued?: number;
  readonly ignored?: number;
}

/** A task that changed (or, in check mode, would change) a host. */
export interface TaskChange {
  readonly task: string;
  readonly host: string;
  /** A readable diff, when the module reported one. */
  readonly diff?: string | undefined;
}

/** A run that completed: every host reached, no task failed (ignored failures aside). */
export interface PlaybookRun {
  readonly changes: readonly TaskChange[];
  /** Tasks check mode skipped because their module cannot simulate (command, shell …): what they would do is unknown. */
  readonly unsimulated: readonly string[];
  readonly outputs: Outputs;
}

/** Which kind of run: `check` = `--check --diff` (observe), `apply` = a real run. */
export type RunMode = 'check' | 'apply';

/** The largest diff kept per task, in characters. */
export const MAX_DIFF_CHARS = 8000;

/** The ansible-playbook arguments for a run. Every option is `--name=value`, so no value can pass for an option. */
export function playbookArgs(options: {
  readonly playbook: string;
  readonly inventory?: string | readonly string[] | undefined;
  readonly limit?: string | undefined;
  readonly tags: readonly string[];
  readonly connection?: string | undefined;
  readonly varsFile?: string | undefined;
  readonly mode: RunMode;
}): string[] {
  const args: string[] = [];
  const inventories = options.inventory === undefined ? [] : typeof options.inventory === 'string' ? [options.inventory] : options.inventory;
  for (const inv of inventories) args.push(`--inventory=${inv}`);
  if (options.connection !== undefined) args.push(`--connection=${options.connection}`);
  if (options.limit !== undefined) args.push(`--limit=${options.limit}`);
  if (options.tags.length > 0) args.push(`--tags=${options.tags.join(',')}`);
  if (options.varsFile !== undefined) args.push(`--extra-vars=@${options.varsFile}`);
  if (options.mode === 'check') args.push('--check', '--diff');
  args.push(options.playbook);
  return args;
}

/**
 * The run's result, or a `FaultError`: a failed task is permanent (with its
 * name and msg), an unreachable host transient (permanent when ssh refused
 * its host key), a refused login or become auth, anything ansible-playbook
 * itself rejects (syntax, missing playbook, bad options) permanent, a timeout
 * transient. `tags`: the run's `--tags`, named when they may be why no host ran. `create`: the run
 * is a create's, so one stopped after it began is cut short (`Fault.cutShort`).
 */
export function interpretRun(outcome: ProcessOutcome, options: { readonly tags?: readonly string[]; readonly create?: boolean } = {}): PlaybookRun {
  // A create's run stopped mid-way may have run tasks check mode cannot see (command, shell): the runtime
  // keeps it pending, and the next check is told it was interrupted rather than run it all again unasked.
  const stopped = options.create === true ? { cutShort: true as const } : {};
  switch (outcome.status) {
    case 'exited': {
      const report = parseReport(outcome.stdout);
      if (report === undefined) {
        if (outcome.exitCode === 0) throw new FaultError(badOutput(outcome.stdout));
        throw new FaultError(runError(outcome.exitCode, outcome.stderr));
      }
      const failure = hostFailures(report);
      if (failure !== undefined) throw new FaultError(failure);
      if (outcome.exitCode !== 0) throw new FaultError(runError(outcome.exitCode, outcome.stderr));
      if (Object.keys(report.stats).length === 0) {
        // ansible-playbook exits 0 when every play skips with "no hosts matched": nothing was checked or applied.
        // Tags that no task has leave the same report (no host ran a task): a typo in them reads the same.
        const tags = options.tags ?? [];
        const why = tags.length === 0 ? '' : `, or no task has the tags ${tags.join(', ')}`;
        throw new FaultError(
          fault('permanent', `the playbook ran on no host: no play's hosts matched a host of the inventory (and limit)${why}`, {
            code: 'no-hosts',
            hint: `check the inventory, the limit${tags.length === 0 ? '' : ', the tags'} and the hosts: line of each play`,
          }),
        );
      }
      return { changes: taskChanges(report), unsimulated: unsimulatedTasks(report), outputs: summaryOutputs(report) };
    }
    case 'signaled':
      throw new FaultError(fault('transient', `ansible-playbook was killed by ${outcome.signal}`, { code: `signal-${outcome.signal}`, ...stopped }));
    case 'timedOut':
      throw new FaultError(
        fault('transient', `ansible-playbook timed out after ${outcome.timeoutMs} ms; its process group was killed`, {
          code: 'timeout',
          hint: 'raise the backend timeout',
          ...stopped,
        }),
      );
    case 'outputTooLarge':
      throw new FaultError(fault('permanent', `ansible-playbook printed more than ${outcome.maxOutputBytes} bytes`, { code: 'bad-output', hint: 'raise maxOutputBytes', ...stopped }));
    case 'aborted':
      throw new FaultError(fault('transient', 'ansible-playbook aborted', { code: 'aborted', ...stopped }));
    case 'spawnFailed':
      throw new FaultError(
        fault('permanent', `ansible-playbook could not be started: ${outcome.message}`, {
          code: 'spawn-failed',
          hint: spawnFailedHint(outcome.code),
        }),
      );
    default:
      return assertNever(outcome, 'process outcome');
  }
}

/** What to do about an ansible-playbook that could not be started, by the spawn's errno (a run's fault, the health check). */
export function spawnFailedHint(code: string | undefined): string | undefined {
  if (code === 'ENOENT') return 'install ansible-core (apt-get install ansible-core) or set the backend config ansiblePlaybook';
  if (code === 'ENOTDIR') return "check the backend config cwd (relative to the daemon's working directory)";
  return undefined;
}

/** The JSON document in stdout, or undefined when there is none (ansible-playbook failed before the first play). */
export function parseReport(stdout: string): PlaybookReport | undefined {
  const text = stdout.trim();
  if (text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Another plugin may have printed a line before the report: the report starts at a line of its own.
    const start = text.search(/^\{/m);
    if (start <= 0) return undefined;
    try {
      value = JSON.parse(text.slice(start));
    } catch {
      return undefined;
    }
  }
  if (!isJsonObject(value) || !Array.isArray(value.plays) || !isJsonObject(value.stats)) return undefined;
  return value as unknown as PlaybookReport;
}

/**
 * The fault for hosts that failed or were unreachable. Only a host whose
 * stats count a failure has really failed (a task with ignore_errors, or one
 * rescued, also reports `failed`): its last failed task is the cause. A login
 * or become the host refused is `auth`: no retry mends a key or a password, so
 * the fault policy holds it rather than retry it for ever.
 */
export function hostFailures(report: PlaybookReport): Fault | undefined {
  const failed: string[] = [];
  const unreachable: string[] = [];
  for (const [host, stats] of Object.entries(report.stats)) {
    if (stats.failures > 0) failed.push(describeLast(report, host, (r) => r.failed === true && r.unreachable !== true) ?? `host ${host} failed`);
    if (stats.unreachable > 0) unreachable.push(describeLast(report, host, (r) => r.unreachable === true) ?? `host ${host} unreachable`);
  }
  const message = bounded([...failed, ...unreachable].join('\n'));
  if (failed.length > 0 && !failed.every((m) => BECOME_FAILED.test(m))) return fault('permanent', message, { code: 'task-failed' });
  if (unreachable.some((m) => m.includes(SSH_HOST_KEY_FAILED))) {
    // No retry makes an unknown key known, and a changed one may be a man in the middle: an operator decides.
    return fault('permanent', message, {
      code: 'host-key-unverified',
      hint: "check the host's SSH key out of band and add it to the known_hosts of the user the daemon runs as, then retry the node; only on a network you trust, set the backend config hostKeyChecking: false",
    });
  }
  if (unreachable.some((m) => LOGIN_FAILED.test(m))) {
    return fault('auth', message, {
      code: 'login-failed',
      hint: 'check the user and the SSH key or password the host is logged in to with (ansible_user, ansible_ssh_private_key_file, ansible_password), and that the key is readable by the user the daemon runs as; then retry the node',
    });
  }
  if (failed.length > 0) {
    return fault('auth', message, {
      code: 'become-failed',
      hint: 'check the become password (ansible_become_password), and that the user logged in may become become_user on the host (sudoers); then retry the node',
    });
  }
  if (unreachable.length > 0) return fault('transient', message, { code: 'host-unreachable', hint: 'check connectivity and credentials to the host' });
  return undefined;
}

/** What ssh prints when it refuses a host whose key is not in known_hosts, or differs from the one there. */
const SSH_HOST_KEY_FAILED = 'Host key verification failed';

/**
 * An unreachable host's message when the login itself was refused: ssh's `Permission denied (publickey,password).`
 * (no method the server offered succeeded) and `Permission denied, please try again.` (a wrong password), Ansible's
 * `Invalid/incorrect password:` (sshpass said so), paramiko's `Authentication failed.`, and ssh's `Too many
 * authentication failures` (the agent offered more keys than the server allows).
 */
const LOGIN_FAILED = /Permission denied \(|Permission denied, please try again|Invalid\/incorrect (username\/)?password|Authentication failed|Too many authentication failures/;

/**
 * A failed task's message when privilege escalation was refused: Ansible's `Incorrect sudo password` and
 * `Missing sudo password` (over ssh, for any become method), or what sudo and su printed (under the local
 * connection, a `MODULE FAILURE` with their stderr): `sudo: a password is required`, `Sorry, try again.`,
 * `su: Authentication failure`.
 */
const BECOME_FAILED = /: (Incorrect|Missing) \S+ password$|sudo: a password is required|Sorry, try again\.|sudo: \d+ incorrect password attempts?|su: Authentication failure/m;

function describeLast(report: PlaybookReport, host: string, match: (r: HostResult) => boolean): string | undefined {
  let found: string | undefined;
  for (const play of report.plays) {
    for (const t of play.tasks) {
      const r = t.hosts[host];
      if (r !== undefined && match(r)) {
        const msg = messageOf(r);
        found = `task "${t.task.name}" ${r.unreachable === true ? 'could not reach' : 'failed on'} ${host}${msg === '' ? '' : `: ${msg}`}`;
      }
    }
  }
  return found;
}

function messageOf(r: HostResult): string {
  // A module that failed to run says only "MODULE FAILURE … See stdout/stderr": its stderr says why (sudo's refusal, say).
  if (typeof r.msg === 'string' && r.msg.startsWith('MODULE FAILURE') && typeof r.module_stderr === 'string' && r.module_stderr.trim() !== '') {
    return `${r.msg}\n${tailLines(r.module_stderr)}`;
  }
  if (typeof r.msg === 'string') return r.msg;
  if (r.msg !== undefined) return JSON.stringify(r.msg);
  const item = r.results?.find((x) => x.failed === true || x.unreachable === true);
  return item === undefined ? '' : messageOf(item);
}

/** Tasks that changed (in check mode: would change) a host, in run order. Failed and skipped results are not changes. */
export function taskChanges(report: PlaybookReport): TaskChange[] {
  const changes: TaskChange[] = [];
  for (const play of report.plays) {
    for (const t of play.tasks) {
      for (const [host, r] of Object.entries(t.hosts)) {
        if (r.changed !== true || r.failed === true || r.skipped === true) continue;
        const diff = renderResultDiff(r);
        changes.push({ task: t.task.name, host, ...(diff === undefined ? {} : { diff }) });
      }
    }
  }
  return changes;
}

/** Tasks check mode skipped without a condition's `skip_reason`: their module cannot run in check mode. */
function unsimulatedTasks(report: PlaybookReport): string[] {
  const names = new Set<string>();
  for (const play of report.plays) {
    for (const t of play.tasks) {
      if (Object.values(t.hosts).some((r) => r.skipped === true && r.skip_reason === undefined)) names.add(t.task.name);
    }
  }
  return [...names];
}

/** What a task's diff reads as when the playbook is given secrets (see `AnsibleProvisioner.observe`). */
export const DIFF_HIDDEN = '(diff not shown: the playbook is given secrets, and the previous value of a rotated one would show in it unmasked)';

/**
 * Drift entries: `task:<name>`, or `task:<name>@<host>` when the play ran on several hosts; with each
 * task's diff as detail, unless `diffs` is `hidden`.
 */
export function changesToDiffs(changes: readonly TaskChange[], diffs: 'shown' | 'hidden' = 'shown'): FieldDiff[] {
  const hosts = new Set(changes.map((c) => c.host));
  const seen = new Map<string, number>();
  return changes.map((c) => {
    let path = hosts.size > 1 ? `task:${c.task}@${c.host}` : `task:${c.task}`;
    const n = (seen.get(path) ?? 0) + 1;
    seen.set(path, n);
    if (n > 1) path = `${path}#${n}`;
    if (c.diff === undefined) return { path, desired: 'unchanged', actual: 'changed' };
    return { path, desired: 'unchanged', actual: 'changed', detail: diffs === 'shown' ? c.diff : DIFF_HIDDEN };
  });
}

/** Totals over hosts: `{ ok, changed, skipped, hosts }` (a check run counts what would change). */
export function summaryOutputs(report: PlaybookReport): Outputs {
  let ok = 0;
  let changed = 0;
  let skipped = 0;
  for (const s of Object.values(report.stats)) {
    ok += s.ok;
    changed += s.changed;
    skipped += s.skipped;
  }
  return { ok, changed, skipped, hosts: Object.keys(report.stats).length };
}

/** The diff a module reported (`before`/`after` or `prepared`), also inside loop items, bounded. */
export function renderResultDiff(r: HostResult): string | undefined {
  const parts: string[] = [];
  const add = (d: unknown): void => {
    for (const entry of Array.isArray(d) ? d : [d]) {
      const text = renderDiffEntry(entry);
      if (text !== undefined && text !== '') parts.push(text);
    }
  };
  if (r.diff !== undefined) add(r.diff);
  for (const item of r.results ?? []) if (item.changed === true && item.diff !== undefined) add(item.diff);
  if (parts.length === 0) return undefined;
  return bounded(parts.join('\n'), MAX_DIFF_CHARS);
}

/**
 * A module's diff as shown, with what looks like a secret masked (`maskSecretLines`: a setting named
 * as one, `DB_PASSWORD=…`, and a private key's body), as the local backend masks its line diffs: a hand
 * edit may write one into a file the playbook keeps, and a drift report is logged and stored.
 */
function renderDiffEntry(entry: unknown): string | undefined {
  if (!isJsonObject(entry)) return undefined;
  if (typeof entry.prepared === 'string') return maskDiffLines(entry.prepared.trimEnd().split('\n')).join('\n');
  if (!('before' in entry) && !('after' in entry)) return undefined;
  const before = asText(entry.before);
  const after = asText(entry.after);
  if (before === after) return undefined;
  const beforeHeader = header(entry.before_header, 'before');
  const afterHeader = header(entry.after_header, 'after');
  return [`--- ${beforeHeader}`, `+++ ${afterHeader}`, ...lineDiff(before, after)].join('\n');
}

/** The lines of a diff a module prepared (`+line`, `-line`, ` line`, headers), the text after each marker masked. */
function maskDiffLines(lines: readonly string[]): string[] {
  const markers = lines.map((line) => (/^[-+ ]/.test(line) && !/^(---|\+\+\+) /.test(line) ? line[0]! : ''));
  // Masked as one text (a private key's body spans lines), each line's marker put back.
  const masked = maskSecretLines(lines.map((line, i) => line.slice(markers[i]!.length)));
  return masked.map((line, i) => `${markers[i]!}${line}`);
}

/** A diff header; Ansible's own temp files (the rendered source of a copy) become a fixed word, so a diff is stable across runs. */
function header(v: unknown, fallback: string): string {
  if (typeof v !== 'string' || v === '') return fallback;
  return /\/ansible-(local|tmp)-[^/]*\//.test(v) ? `${fallback} (rendered)` : v;
}

function asText(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  return `${JSON.stringify(v, null, 2)}\n`;
}

/** Beyond this many lines on either side the diff is shown as a whole replacement. */
const MAX_LCS_LINES = 2000;
const CONTEXT = 3;

/**
 * A unified-style line diff (no line numbers): changed lines with three lines of context, what looks
 * like a secret in them masked (`maskSecretLines`). Diffed as written and masked after, each line as
 * its own text shows it (a private key's body by its armour, wherever the diff starts): a changed
 * secret is a changed line (`-DB_PASSWORD=<secret>`, `+DB_PASSWORD=<secret>`), never unchanged context.
 */
export function lineDiff(before: string, after: string): string[] {
  const a = splitLines(before);
  const b = splitLines(after);
  const shownA = maskSecretLines(a);
  const shownB = maskSecretLines(b);
  if (a.length > MAX_LCS_LINES || b.length > MAX_LCS_LINES) return [...shownA.map((l) => `-${l}`), ...shownB.map((l) => `+${l}`)];
  let i = 0;
  let j = 0;
  const ops = lineOps(a, b).map((op) => {
    if (op.kind === '-') return { kind: op.kind, line: shownA[i++]! };
    if (op.kind === '+') return { kind: op.kind, line: shownB[j++]! };
    // Unchanged, but it may be masked on one side only (inside a key there): masked if either masks it.
    const [inA, inB] = [shownA[i++]!, shownB[j++]!];
    return { kind: op.kind, line: inA === op.line ? inB : inA };
  });
  // Keep changed lines and their context; mark skipped stretches.
  const keep = ops.map((op, k) => op.kind !== ' ' || ops.slice(Math.max(0, k - CONTEXT), k + CONTEXT + 1).some((o) => o.kind !== ' '));
  const out: string[] = [];
  let skipping = false;
  ops.forEach((op, k) => {
    if (keep[k]) {
      if (skipping || (out.length === 0 && k > 0)) out.push('@@');
      skipping = false;
      out.push(`${op.kind}${op.line}`);
    } else {
      skipping = true;
    }
  });
  return out;
}

function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

function runError(exitCode: number, stderr: string): Fault {
  const tail = tailLines(stderr);
  if (/Invalid callback for stdout specified/.test(stderr)) {
    return fault('permanent', tail, {
      code: 'no-json-callback',
      hint: 'install the ansible.posix collection (Debian: apt-get install ansible), or set the backend config stdoutCallback',
    });
  }
  return fault('permanent', tail === '' ? `ansible-playbook exited with status ${exitCode}` : tail, { code: `ansible-exit-${exitCode}` });
}

function badOutput(stdout: string): Fault {
  const t = stdout.trim();
  return fault('permanent', `ansible-playbook printed no JSON report: ${JSON.stringify(t.length > 200 ? `${t.slice(0, 200)}…` : t)}`, {
    code: 'bad-output',
    hint: 'check that the stdout callback is a JSON callback (no other plugin may print on stdout)',
  });
}

function bounded(text: string, max = 2000): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
