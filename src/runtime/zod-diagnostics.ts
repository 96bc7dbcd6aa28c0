import type { z } from 'zod';
import type { DiagnosticBag } from './diagnostics.ts';
import type { PendingValue } from './interpolation.ts';
import { didYouMean, suggestion } from './diagnostics.ts';
import { isJsonObject } from './json.ts';
import type { SourceLocation } from './node-spec.ts';
import type { PathKey } from './yaml-source.ts';
import { valueAtPath } from './yaml-source.ts';

/** Dotted form of a path: `spec.memberOf[1]`. */
export function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

type AnySchema = z.core.$ZodType;
type SchemaDef = Record<string, unknown> & { type: string };

function defOf(s: AnySchema): SchemaDef {
  return (s as unknown as { _zod: { def: SchemaDef } })._zod.def;
}

/** The schema a wrapper (optional, default, pipe, lazy …) stands for, or undefined for any other. */
function unwrapped(def: SchemaDef): AnySchema | undefined {
  switch (def.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'nonoptional':
    case 'catch':
      return def.innerType as AnySchema;
    case 'pipe':
      return def.in as AnySchema;
    case 'lazy':
      return (def.getter as () => AnySchema)();
    default:
      return undefined;
  }
}

/** The object keys a schema accepts at `path` (through optional, default, arrays, unions). */
export function keysAt(schema: AnySchema, path: readonly PathKey[]): string[] {
  const found = new Set<string>();
  const visit = (s: AnySchema, rest: readonly PathKey[], budget: number): void => {
    if (budget <= 0) return;
    const def = defOf(s);
    const inner = unwrapped(def);
    if (inner !== undefined) {
      visit(inner, rest, budget - 1);
      return;
    }
    switch (def.type) {
      case 'union':
        for (const o of def.options as AnySchema[]) visit(o, rest, budget - 1);
        return;
      case 'intersection':
        visit(def.left as AnySchema, rest, budget - 1);
        visit(def.right as AnySchema, rest, budget - 1);
        return;
      case 'array':
        if (rest.length === 0) return;
        visit(def.element as AnySchema, rest.slice(1), budget - 1);
        return;
      case 'record':
        if (rest.length === 0) return;
        visit(def.valueType as AnySchema, rest.slice(1), budget - 1);
        return;
      case 'object': {
        const shape = def.shape as Record<string, AnySchema>;
        if (rest.length === 0) {
          for (const k of Object.keys(shape)) found.add(k);
          return;
        }
        const next = shape[String(rest[0])];
        if (next !== undefined) visit(next, rest.slice(1), budget - 1);
        return;
      }
      default:
        return;
    }
  };
  visit(schema, path, 64);
  return [...found];
}

/** The schema of field `name` of an object schema (through optional, default, refinements …), or undefined. */
export function fieldSchema(schema: AnySchema, name: string): AnySchema | undefined {
  let s = schema;
  for (let budget = 16; budget > 0; budget--) {
    const def = defOf(s);
    const inner = unwrapped(def);
    if (inner === undefined) return def.type === 'object' && Object.hasOwn(def.shape as object, name) ? (def.shape as Record<string, AnySchema>)[name] : undefined;
    s = inner;
  }
  return undefined;
}

/**
 * Why `path` names no field of `schema`, or undefined when it names one.
 * Paths are written as drift reports show them: dotted field names, `[n]`
 * for a list item (`mode`, `commands.read`, `memberOf[0]`, `input.size`).
 * An open map's (a record's) keys are those of `value` (the node's spec) where
 * it writes the map out: a key it lacks is in no drift report. Where it does
 * not (left out, a reference), any key is a field, and so is anything under it.
 * `owner` names the schema in the message ("local.file").
 */
export function fieldPathProblem(schema: AnySchema, path: string, owner: string, value?: unknown): string | undefined {
  const walk = (start: AnySchema, at: number, done: string, budget: number, written: unknown): string | undefined => {
    let s = start;
    let v = written;
    for (;;) {
      if (budget-- <= 0) return `"${path}" is nested too deeply`;
      const def = defOf(s);
      const inner = unwrapped(def);
      if (inner !== undefined) {
        s = inner;
        continue;
      }
      if (at === path.length) return undefined;
      switch (def.type) {
        case 'record':
        case 'unknown':
        case 'any': {
          // An open map: the keys the spec gives it, where it writes it out; else every key, and whatever it holds.
          const name = path[at] === '.' ? /^[^.[\]]+/.exec(path.slice(at + 1))?.[0] : undefined;
          if (!isJsonObject(v) || name === undefined) return undefined;
          if (!Object.hasOwn(v, name)) {
            const near = didYouMean(name, Object.keys(v));
            return `"${path}" names no key of ${done} in this node's spec, so there is nothing to ignore${near === undefined ? '' : ` (did you mean "${done}.${near}"?)`}`;
          }
          done = `${done}.${name}`;
          at += 1 + name.length;
          v = v[name];
          if (def.type === 'record') s = def.valueType as AnySchema;
          continue;
        }
        case 'union': {
          const problems = (def.options as AnySchema[]).map((o) => walk(o, at, done, budget, v));
          return problems.includes(undefined) ? undefined : problems[0];
        }
        case 'array': {
          const m = /^\[(\d+)\]/.exec(path.slice(at));
          if (m === null) return `"${path}": ${done} is a list; its items are ${done}[0], ${done}[1] …`;
          done += m[0];
          at += m[0].length;
          v = Array.isArray(v) ? v[Number(m[1])] : undefined;
          s = def.element as AnySchema;
          continue;
        }
        case 'object': {
          if (done !== '' && path[at] !== '.') return `"${path}": ${done} is a map; its fields are ${done}.<name>`;
          const from = done === '' ? at : at + 1;
          const name = /^[^.[\]]+/.exec(path.slice(from))?.[0];
          if (name === undefined) return `"${path}" is not a field path (names separated by ".", such as "content" or "input.size")`;
          const shape = def.shape as Record<string, AnySchema>;
          const prefix = done === '' ? '' : `${done}.`;
          if (!Object.hasOwn(shape, name)) {
            const near = didYouMean(name, Object.keys(shape));
            return `"${path}" is not a field of ${owner}${near === undefined ? '' : ` (did you mean "${prefix}${near}"?)`}`;
          }
          done = `${prefix}${name}`;
          at = from + name.length;
          v = isJsonObject(v) ? v[name] : undefined;
          s = shape[name]!;
          continue;
        }
        default:
          return `"${path}": ${done} is a single value, with no fields under it`;
      }
    }
  };
  return walk(schema, 0, '', 256, value);
}

/**
 * An input as its author meant it, for what is checked after its schema's
 * errors (those are reported on the input as written): every problem at
 * once, as if each misspelling were already put right. An unknown key near
 * a field the object lacks (`selfheal`, `bakend`: the "did you mean" of its
 * error) is read as that field. Any other unknown key is left out; as it may
 * stand for any field left out (`env: prod`, a key one level off), its object
 * is unsure (`unsureAt`), and what depends on a field absent there is not
 * judged, so that no error is made up from a guess.
 */
export interface MeantInput {
  readonly value: unknown;
  /** Whether any object holds an unknown key near no field. */
  readonly unsure: boolean;
  /** Whether the field at `path` is absent where an unknown key near no field may stand for it. */
  unsureAt(path: readonly PathKey[]): boolean;
  /** A path in `value` as written in the input (a misspelt key in place of the field it is read as), for positions. */
  written(path: readonly PathKey[]): PathKey[];
}

/** `root` with `value` at `path` (a copy of every container on the way; `root` is left as it is). */
function withValueAt(root: unknown, path: readonly PathKey[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (Array.isArray(root)) {
    const copy = [...root];
    copy[head as number] = withValueAt(root[head as number], rest, value);
    return copy;
  }
  const map = root as Record<string, unknown>;
  return { ...map, [head!]: withValueAt(map[head as string], rest, value) };
}

/** See `MeantInput`: `issues` are those of `schema` on `input`; only their unknown keys are put right. */
export function meantInput(schema: AnySchema, input: unknown, issues: readonly z.core.$ZodIssue[]): MeantInput {
  let value = input;
  const unsure = new Set<string>();
  // Per object (its path, which holds no misspelt key: nothing under an unknown key is validated), the keys read as another.
  const renamed = new Map<string, Map<string, string>>();
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const at = issue.path as PathKey[];
    const object = valueAtPath(value, at);
    if (!isJsonObject(object)) continue;
    const copy = { ...object };
    const candidates = keysAt(schema, at);
    const names = renamed.get(JSON.stringify(at)) ?? new Map<string, string>();
    for (const key of issue.keys) {
      const near = didYouMean(key, candidates);
      const written = copy[key];
      delete copy[key];
      // A field that is there too (or that another misspelling is read as) is not what this key means: it is placed nowhere.
      if (near === undefined || Object.hasOwn(copy, near)) unsure.add(JSON.stringify(at));
      else {
        copy[near] = written;
        names.set(near, key);
      }
    }
    if (names.size > 0) renamed.set(JSON.stringify(at), names);
    value = withValueAt(value, at, copy);
  }
  return {
    value,
    unsure: unsure.size > 0,
    unsureAt: (path) => path.length > 0 && unsure.has(JSON.stringify(path.slice(0, -1))) && valueAtPath(value, path) === undefined,
    written(path) {
      if (renamed.size === 0) return [...path];
      return path.map((key, i) => renamed.get(JSON.stringify(path.slice(0, i)))?.get(String(key)) ?? key);
    },
  };
}

/** Field names whose values are never echoed in a message, whatever their schema says. */
const SECRET_LOOKING = /pass(word)?|secret|token|credential|private.?key|api.?key/i;

function describeValue(v: unknown, path: readonly PathKey[] = []): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a map';
  if (typeof v === 'string') {
    if (v === '') return 'an empty string';
    if (path.some((p) => typeof p === 'string' && SECRET_LOOKING.test(p))) return 'a string';
    return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  }
  if (typeof v === 'number') return Number.isFinite(v) ? `the number ${String(v)}` : `${String(v)} (not a finite number)`;
  return `${typeof v} ${String(v)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a map',
  record: 'a map',
  map: 'a map',
  array: 'a list',
  null: 'null',
};

/** YAML 1.1 wrote booleans many ways; goal files are YAML 1.2, where these are strings. */
const YAML11_BOOLEAN = /^(y|yes|n|no|on|off|true|false)$/i;

/** `shown` is empty for the whole value (a document that is a list): then the message names `owner`. */
function invalidTypeMessage(issue: z.core.$ZodIssueInvalidType, shown: string, owner: string, actual: unknown, path: readonly PathKey[], written: boolean): string {
  // A schema's own message (not zod's "Invalid input: …") says it best.
  if (!issue.message.startsWith('Invalid input')) return `${shown || owner}: ${issue.message}`;
  const expected = EXPECTED[issue.expected] ?? issue.expected;
  const got = `got ${describeValue(actual, path)}${written ? writingHint(issue, actual) : ''}`;
  return shown === '' ? `${owner} must be ${expected}, ${got}` : `${shown}: expected ${expected}, ${got}`;
}

/** How to write in YAML the value an invalid-type issue is about: no help for one an output gave. */
function writingHint(issue: z.core.$ZodIssueInvalidType, actual: unknown): string {
  if (issue.expected === 'boolean' && typeof actual === 'string' && YAML11_BOOLEAN.test(actual)) {
    return ` (goal files are YAML 1.2: only true and false are booleans; ${JSON.stringify(actual)} is a string)`;
  }
  if (issue.expected === 'string' && (typeof actual === 'number' || typeof actual === 'boolean')) return ' (quote it to make it a string)';
  return '';
}

/** The words of a bound, by what zod says is bounded. */
const BOUNDED: Readonly<Record<string, (n: string) => string>> = {
  number: (n) => n,
  int: (n) => n,
  bigint: (n) => n,
  string: (n) => `${n} character${n === '1' ? '' : 's'} long`,
  array: (n) => `${n} item${n === '1' ? '' : 's'}`,
  set: (n) => `${n} item${n === '1' ? '' : 's'}`,
};

/** A value past a bound, in the project's words (`port must be at most 65535, not …`), or the schema's own message. */
function boundMessage(issue: z.core.$ZodIssueTooBig | z.core.$ZodIssueTooSmall, shown: string, actual: unknown, path: readonly PathKey[]): string {
  const big = issue.code === 'too_big';
  const words = BOUNDED[issue.origin];
  // A schema's own message says it best; zod's says "Too big: expected number to be <=65535".
  if (!/^Too (big|small)\b/.test(issue.message) || words === undefined) return `${shown}: ${lowerFirst(issue.message)}`;
  const bound = String(big ? (issue as z.core.$ZodIssueTooBig).maximum : (issue as z.core.$ZodIssueTooSmall).minimum);
  const inclusive = issue.inclusive !== false;
  const limit = big ? (inclusive ? 'at most' : 'less than') : inclusive ? 'at least' : 'more than';
  const got = typeof actual === 'number' || typeof actual === 'bigint' ? describeValue(actual, path) : Array.isArray(actual) ? `${actual.length} item${actual.length === 1 ? '' : 's'}` : typeof actual === 'string' ? `${actual.length} character${actual.length === 1 ? '' : 's'}` : describeValue(actual, path);
  return `${shown} must be ${limit} ${words(bound)}, not ${got}`;
}

/**
 * The issues worth a message: an integer past the safe range (zod's own
 * bound of every `.int()`, `<=9007199254740991`) is left out where the
 * schema's own bound at the same value says it too (a port past 65535).
 */
function withoutEchoes(list: readonly z.core.$ZodIssue[]): readonly z.core.$ZodIssue[] {
  const bounded = (i: z.core.$ZodIssue): boolean => i.code === 'too_big' || i.code === 'too_small';
  const safeRange = (i: z.core.$ZodIssue): boolean => bounded(i) && (i as z.core.$ZodIssueTooBig).origin === 'int';
  if (!list.some(safeRange)) return list;
  const key = (i: z.core.$ZodIssue): string => JSON.stringify([i.code, i.path]);
  const own = new Set(list.filter((i) => bounded(i) && !safeRange(i)).map(key));
  return list.filter((i) => !safeRange(i) || !own.has(key(i)));
}

/** One zod issue, said for a user: where (`path` inside the validated value; `part` key or value) and what. */
export interface IssueMessage {
  readonly path: readonly PathKey[];
  readonly part: 'key' | 'value';
  readonly code: string;
  /** Names the whole path (`spec.mode: …`). */
  readonly message: string;
}

/**
 * Says each zod issue for a user: `prefix` is where the validated value
 * sits (its path in messages), `owner` names what was validated
 * ("local.file", "Goal"). A misspelt required field is one message, at the
 * misspelling; a union says its nearest form. `written: false` for a value
 * that is not as a file writes it (references resolved to outputs): no
 * advice on how to write it then.
 */
export function zodIssueMessages(
  issues: readonly z.core.$ZodIssue[],
  options: { schema: AnySchema; input: unknown; prefix: readonly PathKey[]; owner: string; written?: boolean },
): IssueMessage[] {
  const { schema, input, prefix, owner } = options;
  const out: IssueMessage[] = [];
  const emit = (path: readonly PathKey[], part: 'key' | 'value', code: string, message: string): void => {
    out.push({ path, part, code, message });
  };
  // A required field that is missing because it is misspelt (`contnet` for
  // `content`) is one error, reported at the misspelling with its suggestion.
  const misspelt = new Set<string>();
  for (const issue of issues) {
    if (issue.code !== 'unrecognized_keys') continue;
    const candidates = keysAt(schema, issue.path as PathKey[]);
    for (const k of issue.keys) {
      const near = didYouMean(k, candidates);
      if (near !== undefined) misspelt.add(JSON.stringify([...issue.path, near]));
    }
  }
  // A union branch that fails only for a misspelt key, and the field it stands for missing (`{ fromFil: x }`
  // for `{ fromFile: x }`): the branch meant. Its missing fields are noted as misspelt.
  const misspeltBranch = (branch: readonly z.core.$ZodIssue[]): boolean => {
    const near = new Set<string>();
    for (const i of branch) {
      if (i.code !== 'unrecognized_keys') continue;
      const candidates = keysAt(schema, i.path as PathKey[]);
      for (const k of i.keys) {
        const n = didYouMean(k, candidates);
        if (n !== undefined && n !== k) near.add(JSON.stringify([...i.path, n]));
      }
    }
    const missing = branch.filter((i) => i.code !== 'unrecognized_keys');
    const meant = missing.length > 0 && missing.every((i) => valueAtPath(input, i.path as PathKey[]) === undefined && near.has(JSON.stringify(i.path)));
    if (meant) for (const p of near) misspelt.add(p);
    return meant;
  };
  /** `union`: of a misspelt branch, where the union is and what it says it takes (a secret reference's forms), for an unknown key there. */
  const walk = (list: readonly z.core.$ZodIssue[], union?: { readonly depth: number; readonly forms: string }): void => {
    for (const issue of withoutEchoes(list)) {
      const path = issue.path as PathKey[];
      const shown = formatPath([...prefix, ...path]);
      const actual = valueAtPath(input, path);
      if (actual === undefined && issue.code !== 'unrecognized_keys' && !(issue.code === 'custom' && path.length === 0)) {
        if (!misspelt.has(JSON.stringify(path))) emit(path, 'key', 'missing-field', `${shown} is required by ${owner}`);
        continue;
      }
      switch (issue.code) {
        case 'unrecognized_keys':
          for (const k of issue.keys) {
            const candidates = keysAt(schema, path);
            const what = union?.depth === path.length ? `: ${union.forms}` : ` is not a field of ${owner}`;
            emit([...path, k], 'key', 'unknown-field', `${formatPath([...prefix, ...path, k])}${what}${suggestion(k, candidates)}`);
          }
          break;
        case 'invalid_type':
          emit(path, 'value', 'invalid-type', invalidTypeMessage(issue, shown, owner, actual, path, options.written ?? true));
          break;
        case 'invalid_union': {
          // Report the branch that got furthest, or a summary when none did.
          // A branch's issues are placed relative to the union.
          const branches = issue.errors.filter((b) => b.length > 0).map((b) => b.map((i) => ({ ...i, path: [...path, ...i.path] }) as z.core.$ZodIssue));
          const meant = branches.find(misspeltBranch);
          if (meant !== undefined) {
            // The union's own words for its forms, where it has them, not the owner's: the key is not the owner's field.
            walk(meant, issue.message === 'Invalid input' ? undefined : { depth: path.length, forms: issue.message });
            break;
          }
          // Every form refused the value as a whole (`retryBudget: 1.5` is no integer, no .inf, no null): say them all, not the last one tried.
          const forms = issue.message === 'Invalid input' ? unionForms(branches, path.length) : undefined;
          const best = branches.sort((a, b) => depthOf(b) - depthOf(a))[0];
          if (issue.message !== 'Invalid input' || best === undefined || forms !== undefined || depthOf(best) <= path.length) {
            const message = issue.message !== 'Invalid input' ? issue.message : forms === undefined ? `${describeValue(actual, path)} does not match any accepted form` : `expected ${forms}, got ${describeValue(actual, path)}`;
            emit(path, 'value', 'invalid-value', `${shown}: ${message}`);
          } else {
            walk(best);
          }
          break;
        }
        case 'invalid_value': {
          const values = issue.values.map(spelt);
          if (!issue.message.startsWith('Invalid input') && !issue.message.startsWith('Invalid option')) {
            emit(path, 'value', 'invalid-value', `${shown}: ${issue.message}`);
          } else if (values.length === 1) {
            emit(path, 'value', 'invalid-value', `${shown} must be ${values[0]!}, not ${describeValue(actual, path)}`);
          } else {
            emit(path, 'value', 'invalid-value', `${shown}: ${describeValue(actual, path)} is not one of ${values.join(', ')}${typeof actual === 'string' ? suggestion(actual, issue.values.map(String)) : ''}`);
          }
          break;
        }
        case 'invalid_format':
          emit(path, 'value', 'invalid-value', issue.message.startsWith('Invalid')
            ? `${shown}: ${describeValue(actual, path)} is not a valid ${issue.format === 'regex' ? `value (it must match ${issue.pattern ?? 'the pattern'})` : issue.format}`
            : `${shown}: ${describeValue(actual, path)} is not valid: ${issue.message}`);
          break;
        case 'too_small':
          if (issue.origin === 'string' && Number(issue.minimum) === 1) emit(path, 'value', 'invalid-value', `${shown} must not be empty`);
          else if (issue.origin === 'array' && Number(issue.minimum) === 1) emit(path, 'value', 'invalid-value', `${shown} must not be an empty list`);
          else emit(path, 'value', 'invalid-value', boundMessage(issue, shown, actual, path));
          break;
        case 'too_big':
          emit(path, 'value', 'invalid-value', boundMessage(issue, shown, actual, path));
          break;
        case 'invalid_key':
          // A map key its schema refuses (an extra var that is no Ansible variable name): the key's own check says why.
          emit(path, 'key', 'invalid-value', `${shown}: the key ${JSON.stringify(String(path.at(-1)))} is not valid: ${issue.issues.map((i) => i.message).join('; ')}`);
          break;
        default:
          emit(path, 'value', 'invalid-value', `${shown}: ${issue.message}`);
      }
    }
  };
  walk(issues);
  return out;
}

/**
 * Reports zod issues as diagnostics at their place in the user's file
 * (see `zodIssueMessages`); `prefix` is also where the validated value sits
 * inside the YAML document.
 */
export function reportZodIssues(
  issues: readonly z.core.$ZodIssue[],
  options: {
    schema: AnySchema;
    input: unknown;
    prefix: readonly PathKey[];
    owner: string;
    locate: (path: readonly PathKey[], part?: 'key' | 'value') => SourceLocation;
    diag: DiagnosticBag;
  },
): void {
  const { prefix, locate, diag } = options;
  const seen = new Set<string>();
  for (const m of zodIssueMessages(issues, options)) {
    const loc = locate([...prefix, ...m.path], m.part);
    const key = `${loc.line}:${loc.col}:${m.code}:${m.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    diag.error(loc, m.code, m.message);
  }
}

/**
 * What a pending value can turn out to be, as zod's `invalid_type` names it: text, or an output, which
 * may be any JSON (an exec command's may be a list or a map), so a whole reference may stand for a
 * list or a map field too; which one it is, only the output tells (the dispatcher checks it then).
 */
const PENDING_TYPES: Readonly<Record<PendingValue['type'], ReadonlySet<string>>> = {
  string: new Set(['string']),
  any: new Set(['string', 'number', 'int', 'boolean', 'array', 'object', 'record']),
};

/**
 * Whether a spec's `issue` follows only from a value compile cannot know
 * (see `PendingValue`), matched by the issue's own path, not by where it is
 * reported: any issue at that value except one that no value of its type
 * could escape (text, where a number, a list or a map belongs).
 */
export function pendingIssue(issue: z.core.$ZodIssue, pending: readonly PendingValue[]): boolean {
  const p = pending.find((v) => v.path.length === issue.path.length && v.path.every((k, i) => k === issue.path[i]));
  return p !== undefined && !wrongType(issue, PENDING_TYPES[p.type]);
}

/** An issue saying that the value is of a type none of `can` is (for a union: every form's own issue says so). */
function wrongType(issue: z.core.$ZodIssue, can: ReadonlySet<string>): boolean {
  if (issue.code === 'invalid_type') return !can.has(issue.expected);
  if (issue.code === 'invalid_union') return issue.errors.every((form) => form.some((i) => i.path.length === 0 && wrongType(i, can)));
  return false;
}

function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

/**
 * A value a schema allows, as a YAML file writes it: JSON has no spelling for infinities or NaN
 * (`JSON.stringify(Infinity)` is `null`, which told users an unlimited budget must be null).
 */
function spelt(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? '.nan' : v > 0 ? '.inf' : '-.inf';
  return JSON.stringify(v);
}

/**
 * The forms a union (at `depth`) takes, in words ("a string or a list", "an integer, .inf or null"),
 * where each of its branches refused the value for its type or its value alone; else undefined.
 */
function unionForms(branches: readonly (readonly z.core.$ZodIssue[])[], depth: number): string | undefined {
  const forms: string[] = [];
  for (const branch of branches) {
    const own = branch.find((i) => i.path.length === depth);
    if ((own?.code !== 'invalid_type' && own?.code !== 'invalid_value') || !own.message.startsWith('Invalid input')) return undefined;
    for (const form of own.code === 'invalid_type' ? [EXPECTED[own.expected] ?? own.expected] : own.values.map(spelt)) if (!forms.includes(form)) forms.push(form);
  }
  return forms.length === 0 ? undefined : forms.length === 1 ? forms[0] : `${forms.slice(0, -1).join(', ')} or ${forms.at(-1)!}`;
}

function depthOf(issues: readonly z.core.$ZodIssue[]): number {
  return Math.max(...issues.map((i) => i.path.length + (i.code === 'invalid_type' ? 0 : 0.5)));
}
