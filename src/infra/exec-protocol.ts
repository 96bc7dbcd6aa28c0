import { assertNever, defaultLoadLimits, fault, FaultError, formatPath, inexactNumber, isJsonObject, jsonEqual, ownValue } from '../runtime/index.ts';
import type { Fault, FieldDiff, Observation, OperationContext, Outputs, PathKey } from '../runtime/index.ts';
import { tailLines } from './process.ts';
import type { ProcessOutcome } from './process.ts';
import { maskSecretValue } from './secret-mask.ts';

/**
 * The exec protocol (GOAL-FORMAT.md, "generic.resource — the exec protocol"),
 * pure: what a command printed and how it exited, turned into observations,
 * outputs and classified faults. No I/O here. Shared by the backends that
 * speak it (exec, with user commands; script, with generated scripts).
 */

/** The four protocol commands. */
export type ExecCommand = 'read' | 'create' | 'update' | 'delete';

/** The JSON object every protocol command receives on stdin. */
export interface ExecRequest {
  readonly id: string;
  readonly input: unknown;
  /** Outputs recorded at the last create/update, or null. */
  readonly outputs: unknown;
  /**
   * Present (true) only when a create of this resource was begun and never
   * finished (the daemon died during it, or the command was killed at its
   * timeout, by a signal or by a shutdown): a `read` that cannot tell whether
   * that create made something answers `{"exists": "unknown"}`.
   */
  readonly interrupted?: true;
}

/** The request for node `id` with `input`: its recorded outputs, and `interrupted` only where it is so. */
export function execRequest(id: string, input: unknown, ctx: Pick<OperationContext, 'outputsOf' | 'interrupted'>): ExecRequest {
  return {
    id,
    input,
    outputs: ctx.outputsOf(id) ?? null,
    // Only where it is so: a read that identifies its resource by recorded outputs cannot tell then.
    ...(ctx.interrupted?.(id) === true ? { interrupted: true as const } : {}),
  };
}

/** The request as a command reads it: one JSON line on stdin. */
export function requestLine(request: ExecRequest): string {
  return `${JSON.stringify(request)}\n`;
}

/** Exit statuses with a meaning of their own (sysexits.h). */
export const EX_TEMPFAIL = 75;
export const EX_NOPERM = 77;

/** What a successful `read` said. `unknown`: it cannot tell (after an interrupted create), with its reason. */
export type ReadResult =
  | { readonly exists: false }
  | { readonly exists: 'unknown'; readonly reason: string }
  /** `state` undefined: the read printed none (see `toObservation`). */
  | { readonly exists: true; readonly state: Readonly<Record<string, unknown>> | undefined; readonly outputs: Outputs };

/** What to do about a command that could not be started, by the `spawnFailed` outcome's code. */
const SPAWN_HINTS: Readonly<Record<string, string>> = {
  ENOENT: 'check the program path (relative to the backend cwd) or that PATH is in the env allowlist',
  ENOTDIR: "check the backend config cwd (relative to the daemon's working directory)",
  ENOINTERPRETER:
    'install that interpreter, or point the #! line at one that is installed (#!/usr/bin/env NAME looks it up on PATH); a script saved with Windows line endings needs them converted (dos2unix)',
  EACCES:
    'the program is not executable by the user the daemon runs as: chmod +x it, or run a script through its interpreter ([sh, ./script]); a directory on its path that user may not search, or a filesystem mounted noexec, fails so too',
  EISDIR: 'name the program inside that directory',
};

/**
 * The stdout of a command that exited 0, or the fault for any other ending.
 * Exit 75 is transient, 77 auth, any other non-zero permanent; the message is
 * the tail of stderr.
 */
export function successOutput(command: ExecCommand, result: ProcessOutcome): string {
  // A create stopped before it answered may have made its resource: the runtime keeps it pending (`Fault.cutShort`).
  const stopped = command === 'create' ? { cutShort: true as const } : {};
  switch (result.status) {
    case 'exited': {
      if (result.exitCode === 0) {
        // JSON is UTF-8: bytes that are not would reach the state (and dependents) as U+FFFD.
        if (result.stdoutInvalidUtf8) throw new FaultError(withStderr(badOutput(command, `output that is not valid UTF-8: ${excerpt(result.stdout)}`), result.stderr));
        // Checked here, where stderr is at hand: a command that exits 0 without its JSON (a failed step of a
        // pipeline) has usually said why there, and "printed output that is not JSON: (empty)" does not.
        try {
          checkOutput(command, result.stdout);
        } catch (err) {
          throw err instanceof FaultError ? new FaultError(withStderr(err.fault, result.stderr)) : err;
        }
        return result.stdout;
      }
      const stderrTail = tailLines(result.stderr);
      const cls = result.exitCode === EX_TEMPFAIL ? 'transient' : result.exitCode === EX_NOPERM ? 'auth' : 'permanent';
      const message = stderrTail !== '' ? stderrTail : `${command} command exited with status ${result.exitCode}`;
      throw new FaultError(fault(cls, message, { code: `exit-${result.exitCode}` }));
    }
    case 'signaled': {
      const stderrTail = tailLines(result.stderr);
      const message = stderrTail !== '' ? stderrTail : `${command} command was killed by ${result.signal}`;
      throw new FaultError(fault('permanent', message, { code: `signal-${result.signal}`, ...stopped }));
    }
    case 'timedOut':
      throw new FaultError(
        fault('transient', `${command} command timed out after ${result.timeoutMs} ms; its process group was killed`, {
          code: 'timeout',
          hint: 'raise the backend timeout or make the command faster',
          ...stopped,
        }),
      );
    case 'outputTooLarge':
      throw new FaultError(
        fault('permanent', `${command} command printed more than ${result.maxOutputBytes} bytes`, {
          code: 'bad-output',
          hint: 'print only the protocol JSON on stdout (raise maxOutputBytes if it is really that large)',
          ...stopped,
        }),
      );
    case 'aborted':
      throw new FaultError(fault('transient', `${command} command aborted`, { code: 'aborted', ...stopped }));
    case 'spawnFailed':
      throw new FaultError(
        fault('permanent', `${command} command could not be started: ${result.message}`, {
          code: 'spawn-failed',
          hint: ownValue(SPAWN_HINTS, result.code),
        }),
      );
    default:
      return assertNever(result, 'command result');
  }
}

/** Whether `stdout` is what `command` must print (throws the `bad-output` fault otherwise). */
function checkOutput(command: ExecCommand, stdout: string): void {
  switch (command) {
    case 'read':
      parseRead(stdout);
      return;
    case 'create':
    case 'update':
      parseApply(command, stdout);
      return;
    case 'delete':
      checkDelete(stdout);
      return;
    default:
      assertNever(command, 'exec command');
  }
}

/** The fault with the tail of the command's stderr, if it wrote any. */
function withStderr(f: Fault, stderr: string): Fault {
  const tail = tailLines(stderr);
  return tail === '' ? f : { ...f, message: `${f.message}; its stderr: ${tail}` };
}

/**
 * A `bad-output` fault: the command succeeded but did not print the protocol's JSON. A create that
 * exited 0 has likely made its resource, whose outputs (the id a read finds it by) are lost: cut short.
 */
export function badOutput(command: ExecCommand, why: string): Fault {
  return fault('permanent', `${command} command printed ${why}`, {
    code: 'bad-output',
    hint: 'the command must print only the JSON the exec protocol describes on stdout (logs go to stderr)',
    ...(command === 'create' ? { cutShort: true as const } : {}),
  });
}

/** The deepest nesting accepted in a command's JSON, as in goal files: what walks it later (drift, plan output) recurses. */
const MAX_JSON_DEPTH = defaultLoadLimits.maxDepth;

/**
 * The numbers a parse found that JSON cannot carry as printed (`inexactNumber`, judged on the text
 * printed, which the double read cannot tell): by the object or array holding each, by its key, the
 * text. JSON.parse's reviver is handed that text (`source`); the value it gives back is the double.
 */
type Inexact = Map<object, Map<string, string>>;

function parseJsonObject(command: ExecCommand, stdout: string, inexact?: Inexact): Record<string, unknown> {
  let value: unknown;
  try {
    value = inexact === undefined ? JSON.parse(stdout) : JSON.parse(stdout, noting(inexact));
  } catch {
    throw new FaultError(badOutput(command, `output that is not JSON: ${excerpt(stdout)}`));
  }
  if (!isJsonObject(value)) throw new FaultError(badOutput(command, `JSON that is not an object: ${excerpt(stdout)}`));
  if (jsonDepth(value) > MAX_JSON_DEPTH) throw new FaultError(badOutput(command, `JSON nested more than ${MAX_JSON_DEPTH} levels deep`));
  return value;
}

/** The nesting depth of a parsed JSON value (a scalar is 0), without recursion: the value may be deeper than the stack. */
function jsonDepth(root: unknown): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d + 1 > max) max = d + 1;
    if (max > MAX_JSON_DEPTH) return max;
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return max;
}

/** A JSON.parse reviver that notes in `inexact` each number it reads as another. */
function noting(inexact: Inexact): (this: object, key: string, value: unknown, context?: { readonly source?: string }) => unknown {
  return function (key, value, context) {
    const printed = context?.source;
    if (typeof value === 'number' && printed !== undefined && inexactNumber(value, printed) !== undefined) {
      let keys = inexact.get(this);
      if (keys === undefined) inexact.set(this, (keys = new Map()));
      keys.set(key, printed);
    }
    return value;
  };
}

/**
 * The outputs a command printed: an object whose values are any JSON (a list of addresses, a map of
 * endpoints), recorded and handed back on stdin as printed. Its size and depth are bounded where the
 * whole output is (maxOutputBytes, MAX_JSON_DEPTH). A number in it that JSON cannot carry as printed
 * (`inexact`: a 20-digit id, read as another number, or one too large for a double, read as Infinity
 * and written as null) is bad output: stored, it would reach the nodes that refer to it changed.
 */
function parseOutputs(command: ExecCommand, value: unknown, inexact: Inexact): Outputs {
  if (value === undefined) return {};
  if (!isJsonObject(value)) throw new FaultError(badOutput(command, '"outputs" that is not an object'));
  if (inexact.size > 0) {
    const found = inexactOutputs(value, inexact);
    if (found.length > 0) {
      const listed = found.map(({ path, printed, read }) => `${formatPath(['outputs', ...path])}: ${printed} (${Number.isFinite(read) ? `read as ${JSON.stringify(read)}` : 'too large for a double'})`);
      throw new FaultError({
        ...badOutput(command, `numbers that JSON cannot carry as printed, a whole number beyond ±9007199254740991 (2^53−1) or one too large for a double: ${listed.join('; ')}`),
        hint: `print each as a string (${JSON.stringify(found[0]!.printed)}): a node that refers to it would get another number`,
      });
    }
  }
  return value as Outputs;
}

/** Where in `outputs` the numbers `inexact` noted are, in order, with the text printed and the double read. */
function inexactOutputs(outputs: Readonly<Record<string, unknown>>, inexact: Inexact): { path: PathKey[]; printed: string; read: number }[] {
  const found: { path: PathKey[]; printed: string; read: number }[] = [];
  // Bounded by MAX_JSON_DEPTH, checked before.
  const visit = (holder: object, path: PathKey[]): void => {
    const keys = inexact.get(holder);
    for (const [k, v] of Object.entries(holder)) {
      const at = [...path, Array.isArray(holder) ? Number(k) : k];
      const printed = keys?.get(k);
      if (printed !== undefined && typeof v === 'number') found.push({ path: at, printed, read: v });
      else if (typeof v === 'object' && v !== null) visit(v, at);
    }
  };
  visit(outputs, []);
  return found;
}

/**
 * Parses `read`'s stdout: `{"exists":false}`, `{"exists":true,"state":{…},"outputs":{…}}`,
 * or `{"exists":"unknown","reason":"…"}` when it cannot tell (the reason is optional).
 */
export function parseRead(stdout: string): ReadResult {
  const inexact: Inexact = new Map();
  const obj = parseJsonObject('read', stdout, inexact);
  if (obj.exists === false) return { exists: false };
  if (obj.exists === 'unknown') {
    if (obj.reason !== undefined && typeof obj.reason !== 'string') throw new FaultError(badOutput('read', '"reason" that is not a string'));
    const reason = typeof obj.reason === 'string' && obj.reason.trim() !== '' ? obj.reason.trim() : 'the read command cannot tell';
    return { exists: 'unknown', reason };
  }
  if (obj.exists !== true) throw new FaultError(badOutput('read', 'an object without "exists" true, false or "unknown"'));
  const state = obj.state;
  if (state !== undefined && !isJsonObject(state)) throw new FaultError(badOutput('read', '"state" that is not an object'));
  return { exists: true, state, outputs: parseOutputs('read', obj.outputs, inexact) };
}

/**
 * Parses `create`'s or `update`'s stdout: `{"outputs":{…}}` (GOAL-FORMAT.md), `{"outputs":{}}` when
 * there are none. An object without `outputs` (`{}`, a misspelt `{"output":{…}}`) is bad output, not
 * a success with no outputs: the id a create printed under another key would be lost without a word.
 */
export function parseApply(command: 'create' | 'update', stdout: string): Outputs {
  if (stdout.trim() === '') throw new FaultError(badOutput(command, 'nothing (expected {"outputs":{…}})'));
  const inexact: Inexact = new Map();
  const obj = parseJsonObject(command, stdout, inexact);
  if (!('outputs' in obj)) throw new FaultError(badOutput(command, `an object without "outputs" (expected {"outputs":{…}}): ${excerpt(stdout)}`));
  return parseOutputs(command, obj.outputs, inexact);
}

/**
 * The outputs recorded after an update: what it printed laid over those recorded so far. An update
 * changes the resource create made, so what it does not print again (the server-assigned id a read
 * finds the resource by) still holds; in their place, the next read would not find the resource, and
 * it would be created a second time.
 */
export function updatedOutputs(printed: Outputs, recorded: Outputs | undefined): Outputs {
  return recorded === undefined ? printed : { ...recorded, ...printed };
}

/**
 * Checks `delete`'s stdout: nothing (GOAL-FORMAT.md), or an empty JSON object (`{}`, which scripts
 * built on one printer often give). Anything else is bad output: what a delete meant by it is not
 * known (the resource is observed again at the next pass either way).
 */
export function checkDelete(stdout: string): void {
  if (stdout.trim() === '') return;
  const obj = parseJsonObject('delete', stdout);
  if (Object.keys(obj).length > 0) throw new FaultError(badOutput('delete', `${excerpt(stdout)} (expected nothing)`));
}

/**
 * Drift: every key of `input` whose value differs (deep-equal) from the same key in `state`, one diff
 * per key (`input.<key>`). `ignore` (the node's `ignoreFields`): a path inside a key (`input.nested.x`)
 * is left out of both values before they are compared, so it makes no drift and shows in none; a path
 * naming a key itself is the runtime's to drop (`withoutIgnored`), as for every backend.
 */
export function inputDiffs(input: Readonly<Record<string, unknown>>, state: Readonly<Record<string, unknown>>, ignore: readonly string[] = []): FieldDiff[] {
  const diffs: FieldDiff[] = [];
  for (const [key, written] of Object.entries(input)) {
    const path = `input.${key}`;
    const inside = ignoredInside(path, ignore);
    const desired = leftOut(written, inside);
    const actual = leftOut(ownValue(state, key), inside);
    // A key set to null asks for no value: a state that leaves the key out has none (else it would drift, and be "corrected", on every pass).
    if (desired === null && actual === undefined) continue;
    if (!jsonEqual(desired, actual)) diffs.push({ path, desired, actual });
  }
  return diffs;
}

/** A step of a path into a JSON value: a map key, or a list index. */
type Step = string | number;

/** The paths of `ignore` strictly inside `path`, as steps from it (`input.a.b[0]` inside `input.a`: `["b", 0]`); one that is no field path is left out. */
function ignoredInside(path: string, ignore: readonly string[]): Step[][] {
  const inside: Step[][] = [];
  for (const field of ignore) {
    if (!field.startsWith(`${path}.`) && !field.startsWith(`${path}[`)) continue;
    const rest = field.slice(path.length);
    const steps = [...rest.matchAll(/\.([^.[\]]+)|\[(\d+)\]/g)];
    if (steps.map((m) => m[0]).join('') === rest) inside.push(steps.map((m) => m[1] ?? Number(m[2])));
  }
  return inside;
}

/** `value` without what `paths` name in it (a map key, a list item), as a copy; what it lacks is left as it is. */
function leftOut(value: unknown, paths: readonly (readonly Step[])[]): unknown {
  if (paths.length === 0) return value;
  // What is kept of the item at `step`: nothing where a path ends there, else the item without what the paths go on to name.
  const kept = (step: Step, item: unknown): unknown[] => {
    const rest = paths.filter((p) => p[0] === step).map((p) => p.slice(1));
    return rest.some((r) => r.length === 0) ? [] : [leftOut(item, rest)];
  };
  if (Array.isArray(value)) return value.flatMap((item: unknown, i) => kept(i, item));
  if (isJsonObject(value)) return Object.fromEntries(Object.entries(value).flatMap(([k, item]) => kept(k, item).map((x) => [k, x])));
  return value;
}

/**
 * The observation for a read result. `recorded`: the node's outputs so far. What the read prints
 * is laid over them, never in their place: the next request's `outputs` must still hold what create
 * and update recorded (a read that finds its resource by a server-assigned id may print no outputs).
 * `ignore`: the node's `ignoreFields`, for the paths inside an input key (see `inputDiffs`).
 */
export function toObservation(input: Readonly<Record<string, unknown>>, read: ReadResult, recorded?: Outputs, ignore: readonly string[] = []): Observation {
  if (read.exists === 'unknown') return { status: 'indeterminate', reason: `read: ${read.reason}` };
  if (!read.exists) return { status: 'absent' };
  // Without a state there is nothing to compare an input with: every key would drift, and be
  // "corrected" on every pass. Bad output then, unless the input is empty (nothing to compare).
  if (read.state === undefined && Object.keys(input).length > 0) return { status: 'failed', fault: badOutput('read', '{"exists": true} without the "state" to compare the input with') };
  const outputs = recorded === undefined ? read.outputs : { ...recorded, ...read.outputs };
  const diffs = inputDiffs(input, read.state ?? {}, ignore);
  return diffs.length === 0 ? { status: 'upToDate', outputs } : { status: 'drifted', diffs: diffs.map(shownDiff), outputs };
}

/**
 * A diff as `plan`, the drift log line and the stored report show it: each side walked
 * (`maskSecretValue`), so that a value under a key that says secret is masked, at any depth
 * (`db_password`, `db: {password: …}`), and what looks like a secret in any other text value
 * (a hand edit may write `DB_PASSWORD=…` into a file a script manages). A diff's key is its path's
 * (`input.<key>`, see `inputDiffs`). Only shown: the values were compared as read, and the outputs
 * handed on are not these.
 */
function shownDiff(d: FieldDiff): FieldDiff {
  const key = d.path.slice('input.'.length);
  return { ...d, desired: maskSecretValue(d.desired, key), actual: maskSecretValue(d.actual, key) };
}

function excerpt(text: string, max = 200): string {
  const t = text.trim();
  if (t === '') return '(empty)';
  return JSON.stringify(t.length > max ? `${t.slice(0, max)}…` : t);
}
