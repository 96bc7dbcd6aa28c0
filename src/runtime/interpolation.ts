import { suggestion } from './diagnostics.ts';
import { ownValue } from './json.ts';
import type { Fault } from './fault.ts';
import type { Outputs } from './provisioner.ts';
import { NODE_ID_PATTERN } from './node-spec.ts';
import type { NodeId } from './node-spec.ts';
import type { PathKey } from './yaml-source.ts';

/** A `${nodes.<id>.outputs.<key>}` reference found in a spec. */
export interface OutputReference {
  readonly node: NodeId;
  readonly key: string;
  /** Where in the spec it sits. */
  readonly path: readonly PathKey[];
  /** Index of its `${` in the string. */
  readonly index?: number | undefined;
  /** True when it is the whole string (see `wholeReference`): it becomes the output's own value, not text. */
  readonly whole: boolean;
}

/**
 * A string of a spec whose value compile cannot know: it holds a
 * `${nodes…}` reference (known once the output is), or it reads a goal
 * field that was invalid in the goal document (its error already reported).
 * A check of such a string that fails on what the string says is no error
 * of its own; one that fails on its type may be.
 */
export interface PendingValue {
  /** Where in the spec it sits. */
  readonly path: readonly PathKey[];
  /**
   * What it will be: `string`, text whose content is not known yet; `any`,
   * exactly one reference and nothing else, which becomes the output's own
   * value (a number stays a number).
   */
  readonly type: 'string' | 'any';
}

export interface GoalContext {
  readonly name: string;
  readonly environment: string;
  /** The goal's own `metadata.labels` (not merged with a node's). */
  readonly labels: Readonly<Record<string, string>>;
}

/** A goal field that `${goal.*}` reads. */
export type GoalField = 'name' | 'environment' | 'labels';

// `$${` (escape), `${expr}`, or a `${` that is never closed.
const EXPR = /\$\$\{|\$\{([^}]*)\}|\$\{/g;

/** A goal value put into a spec must not be read later as an expression. */
const literal = (s: string): string => s.replaceAll('${', () => '$${');
/** Inside `${…}`: `nodes.<id>.outputs.<key>`, an id as `NODE_ID_PATTERN` has it. */
const REF_ID = NODE_ID_PATTERN.source.slice(1, -1);
const REF_KEY = '[A-Za-z0-9_.-]+';
const NODE_REF = new RegExp(`^nodes\\.(${REF_ID})\\.outputs\\.(${REF_KEY})$`);

/**
 * Patterns (ECMAScript, as JSON Schema's `pattern` reads them) of a string
 * that is one `${nodes.<id>.outputs.<key>}` and nothing else (`wholeReference`),
 * and of a string that holds one, or a `${goal.name}`, `${goal.environment}`,
 * `${goal.labels.<key>}`, somewhere (not after `$`: `$${` is a literal `${`).
 */
export const REFERENCE_PATTERNS = {
  whole: `^\\$\\{\\s*nodes\\.${REF_ID}\\.outputs\\.${REF_KEY}\\s*\\}$`,
  some: `(^|[^$])\\$\\{\\s*(nodes\\.${REF_ID}\\.outputs\\.${REF_KEY}|goal\\.(name|environment|labels\\.[^}\\s]+))\\s*\\}`,
} as const;

const ONE_EXPR = /^\$\{([^}]*)\}$/;

/**
 * Whether `s` is one `${nodes.<id>.outputs.<key>}` and nothing else: not a
 * character before the `${` or after the `}` (spaces inside the braces are
 * the expression's own, as anywhere). Such a string becomes the output's
 * value with its type, as Terraform reads `"${var.port}"`; any other string
 * that holds a reference stays a string, the output inserted as text.
 */
export function wholeReference(s: string): boolean {
  const m = ONE_EXPR.exec(s);
  return m !== null && NODE_REF.test(m[1]!.trim());
}

/** Whether `s` holds a `${` that is not the `$${` escape: an expression, or one never closed. */
export function holdsExpression(s: string): boolean {
  if (!s.includes('${')) return false;
  for (const m of s.matchAll(EXPR)) if (m[0] !== '$${') return true;
  return false;
}

/**
 * Whether the template string `s` holds a `${nodes.<id>.outputs.<key>}` reference, read as
 * `resolveReferences` reads it: `$${` is a literal `${`, never the start of one.
 */
export function holdsNodeReference(s: string): boolean {
  for (const m of s.matchAll(EXPR)) if (m[1] !== undefined && NODE_REF.test(m[1].trim())) return true;
  return false;
}

/**
 * Whether `value` is a whole reference (`wholeReference`). In a compiled
 * template one may stand where the type takes a number, a boolean, a list
 * or a map: a check at compile time that reads such a field takes it for
 * a value known only at run time, not for the value itself.
 */
export function isWholeReference(value: unknown): value is string {
  return typeof value === 'string' && wholeReference(value);
}

/**
 * Replaces `${goal.*}` in every string of `value` and collects
 * `${nodes.<id>.outputs.<key>}` references. Unknown expressions are reported.
 *
 * The result is a template, with one meaning whatever else a string holds:
 * `${nodes…}` is a reference and `$${` a literal `${`, both for
 * `resolveReferences` to replace before a backend sees the value. A goal
 * value goes in verbatim, its own `${` escaped, so that it is never read as
 * an expression later.
 *
 * `unknown` names goal fields that were invalid in the goal document (their
 * error is already reported): an expression reading one is left in place
 * and not reported again. Its string, like every string holding a
 * reference, is returned in `pending`: a check that fails on what such a
 * string says is an echo, or is for after resolution, not an error now.
 *
 * A map's keys are taken as written: `literalKeys` are the paths of those
 * that hold an expression (`holdsExpression`), for a warning.
 */
export function interpolateGoal(
  value: unknown,
  goal: GoalContext,
  report: (path: readonly PathKey[], message: string, index?: number) => void,
  options: { readonly unknown?: ReadonlySet<GoalField> | undefined } = {},
): { value: unknown; references: OutputReference[]; pending: PendingValue[]; literalKeys: PathKey[][] } {
  const references: OutputReference[] = [];
  const pending: PendingValue[] = [];
  const literalKeys: PathKey[][] = [];
  const unknown = options.unknown;
  // The walk's path, copied only when something is reported or referenced.
  const interpolated = mapStrings(value, (v, at) => {
    if (!v.includes('${')) return v;
    const path = [...at];
    let tainted = false;
    const first = references.length;
    const out = v.replace(EXPR, (whole: string, expr: string | undefined, index: number) => {
      if (expr === undefined) {
        if (whole === '${') report(path, '"${" is never closed by "}" (write "$${" for a literal "${")', index);
        return whole; // `$${`: kept, unescaped at resolve time
      }
      const e = expr.trim();
      const field: GoalField | undefined = e === 'goal.name' ? 'name' : e === 'goal.environment' ? 'environment' : e.startsWith('goal.labels.') ? 'labels' : undefined;
      if (field !== undefined && unknown?.has(field) === true) {
        tainted = true;
        return whole;
      }
      if (field === 'name') return literal(goal.name);
      if (field === 'environment') return literal(goal.environment);
      if (field === 'labels') {
        const key = e.slice('goal.labels.'.length);
        const label = ownValue(goal.labels, key);
        if (label === undefined) report(path, `\${${e}}: goal "${goal.name}" has no label "${key}"${suggestion(key, Object.keys(goal.labels))}`, index);
        return label === undefined ? whole : literal(label);
      }
      const ref = NODE_REF.exec(e);
      if (ref !== null) {
        references.push({ node: ref[1]!, key: ref[2]!, path, index, whole: false });
        return whole;
      }
      // The escape too: \${HOME} in a script or a config file is most often meant for the shell or the program, not for us.
      report(path, `\${${e}} is not a known expression${suggestion(e, ['goal.name', 'goal.environment'])} (use \${goal.name}, \${goal.environment}, \${goal.labels.<key>} or \${nodes.<id>.outputs.<key>}; write $${whole} for the text "${whole}")`, index);
      return whole;
    });
    // Read from the template, as `resolveReferences` will read it (an empty label before a reference leaves it whole).
    const whole = wholeReference(out);
    if (whole) references[first] = { ...references[first]!, whole: true };
    // A goal field is text, and so is a string with more than one reference in it: only a whole reference may be any value.
    if (tainted || references.length > first) pending.push({ path, type: whole ? 'any' : 'string' });
    return out;
  }, (key, at) => {
    if (holdsExpression(key)) literalKeys.push([...at]);
  });
  return { value: interpolated, references, pending, literalKeys };
}

/**
 * Each string of `value` (JSON data that nothing interpolates: a Backend's config) that holds an
 * expression (`holdsExpression`), with its path: taken as written, for a warning.
 */
export function literalExpressions(value: unknown): { readonly path: PathKey[]; readonly text: string }[] {
  const found: { path: PathKey[]; text: string }[] = [];
  mapStrings(value, (s, at) => {
    if (holdsExpression(s)) found.push({ path: [...at], text: s });
    return s;
  });
  return found;
}

/**
 * A copy of `value` (JSON data) with every string `s` replaced by
 * `map(s, path)`, each map key holding a `${` shown to `key`. `path` is the
 * walk's own stack, valid during the call only: a mapper that keeps it copies it.
 */
function mapStrings(value: unknown, map: (s: string, path: readonly PathKey[]) => unknown, key?: (k: string, path: readonly PathKey[]) => void): unknown {
  const stack: PathKey[] = [];
  const visit = (v: unknown): unknown => {
    if (typeof v === 'string') return map(v, stack);
    if (Array.isArray(v)) {
      const out: unknown[] = new Array<unknown>(v.length);
      for (let i = 0; i < v.length; i++) {
        stack.push(i);
        out[i] = visit(v[i]);
        stack.pop();
      }
      return out;
    }
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k in v) {
        stack.push(k);
        if (key !== undefined && k.includes('${')) key(k, stack);
        out[k] = visit((v as Record<string, unknown>)[k]);
        stack.pop();
      }
      return out;
    }
    return v;
  };
  return visit(value);
}

/**
 * True if `value` is a template that `resolveReferences` changes: some
 * string holds a `${nodes…}` reference or a `$${` escape. Every `${` in a
 * compiled spec is one or the other, so a spec for which this is false is
 * already what a backend must see; for any other, a backend must only ever
 * see the resolved form (else a `$${` would reach it as written).
 */
export function hasReferences(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('${');
  if (Array.isArray(value)) return value.some(hasReferences);
  if (value !== null && typeof value === 'object') return Object.values(value).some(hasReferences);
  return false;
}

/**
 * Replaces `${nodes.<id>.outputs.<key>}` with recorded outputs and every
 * `$${` with `${` (once: an output value is inserted verbatim). A string
 * that is one reference and nothing else (`wholeReference`) becomes the
 * output's value itself, a number or boolean keeping its type, a list or a
 * map (an exec command's output may be any JSON) put in whole; in any other
 * string the output is inserted as text. Returns the
 * references that have no value yet (the node must wait for them: their
 * node has given no outputs yet, or gives the key as null), those whose node
 * gave outputs without the key (`unknown`: nothing changes that until the
 * goal or that node does), every
 * (node, key, value) read, so that a caller can tell when the same outputs
 * would resolve the same way again, and where each reference was, so that
 * a value that turns out wrong can be traced to the reference that put it
 * there; and `embedded`, the references inside a longer string whose output
 * is a list or a map: no text stands for one (not "a,b", not
 * "[object Object]"), so the caller refuses the spec, naming them.
 */
export function resolveReferences<T>(
  value: T,
  outputsOf: (id: NodeId) => Outputs | undefined,
): {
  value: T;
  missing: string[];
  unknown: UnknownOutput[];
  used: [NodeId, string, Outputs[string] | undefined][];
  references: OutputReference[];
  embedded: EmbeddedStructure[];
} {
  const missing: string[] = [];
  const unknown: UnknownOutput[] = [];
  const used: [NodeId, string, Outputs[string] | undefined][] = [];
  const references: OutputReference[] = [];
  const embedded: EmbeddedStructure[] = [];
  const resolved = mapStrings(value, (v, path) => {
    if (!v.includes('${')) return v;
    const one = wholeReference(v);
    let typed: Outputs[string] | undefined;
    const text = v.replace(EXPR, (whole, expr: string | undefined, index: number) => {
      if (expr === undefined) return '${';
      const ref = NODE_REF.exec(expr.trim());
      if (ref === null) return whole;
      const given = outputsOf(ref[1]!);
      // Own keys only: an output named `constructor` is not the prototype's.
      const has = given !== undefined && Object.hasOwn(given, ref[2]!);
      const out = has ? given[ref[2]!] : undefined;
      used.push([ref[1]!, ref[2]!, out]);
      const reference = { node: ref[1]!, key: ref[2]!, path: [...path], index, whole: one };
      references.push(reference);
      if (given !== undefined && !has) {
        unknown.push({ ...reference, keys: Object.keys(given) });
        return whole;
      }
      if (out === undefined || out === null) {
        missing.push(`${ref[1]}.${ref[2]}`);
        return whole;
      }
      typed = out;
      if (typeof out !== 'object') return String(out);
      if (!one) embedded.push({ ...reference, value: out });
      return whole;
    });
    return one && typed !== undefined ? typed : text;
  });
  return { value: resolved as T, missing, unknown, used, references, embedded };
}

/**
 * Codes of the fault of a node with a reference that has no value, raised before its backend is
 * called: `outputs-missing` (transient), its node has given no outputs yet or gives the key as null,
 * a wait; `output-unknown` (permanent), its node gave outputs without the key; `delete-outputs-unknown`
 * (permanent), the delete of a node removed from the goals, which nothing comes to by waiting.
 */
export const OUTPUTS_MISSING = 'outputs-missing';
export const OUTPUT_UNKNOWN = 'output-unknown';
export const DELETE_OUTPUTS_UNKNOWN = 'delete-outputs-unknown';

/**
 * Whether `f` is the fault of a reference without a value (any code above): judged on the
 * producer's outputs as they were, so a producer created or changed in the same pass may still give it.
 */
export function awaitsOutput(f: Fault): boolean {
  return f.code === OUTPUTS_MISSING || f.code === OUTPUT_UNKNOWN || f.code === DELETE_OUTPUTS_UNKNOWN;
}

/** A reference to a key its node's outputs lack, with the keys they have (see `resolveReferences`). */
export interface UnknownOutput extends OutputReference {
  readonly keys: readonly string[];
}

/** A reference inside a longer string to an output that is a list or a map (see `resolveReferences`). */
export interface EmbeddedStructure extends OutputReference {
  readonly value: Outputs[string];
}

/**
 * `value` as a backend is handed it, for showing (a plan): every `$${` the literal `${` it stands
 * for; a `${nodes…}` reference, whose value is known only when the node runs, left as written.
 */
export function shownTemplate<T>(value: T): T {
  return hasReferences(value) ? resolveReferences(value, () => undefined).value : value;
}
