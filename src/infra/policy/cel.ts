import { createRequire } from 'node:module';
import type * as CelModule from '@bufbuild/cel';
import type { CelEnv, CelFunc, CelInput } from '@bufbuild/cel';
import type * as CelExt from '@bufbuild/cel/ext';
import type * as Re2 from '@bufbuild/re2';
import { didYouMean, errorMessage } from '../../runtime/index.ts';
import { APPEND, MAX_EVALUATION_MS, RANGE, STEP, budgetedFunctions, startMeter, stopMeter } from './cel-budget.ts';
import type { Overrun } from './cel-budget.ts';
import { checkTypes, names, overloadsByName } from './cel-types.ts';
import type { SpecFieldKinds, TypeIssue } from './cel-types.ts';
import type { PathKey } from '../../runtime/index.ts';

/**
 * CEL for policy rules: compiled once at load (parse, static checks, plan),
 * evaluated many times. @bufbuild/cel 0.6 has no cost budget and does not
 * export a type checker, so types are checked in cel-types.ts, cost is
 * bounded statically here (length, AST size, depth, comprehension nesting),
 * each evaluation has a budget of loop steps and of cost (cel-budget.ts), and
 * every evaluation error is caught and returned as a value, never thrown.
 */

/** The variables an expression sees. `deletionPolicy` is the node's, as resolved (Orphan unless the goal says Delete). */
export const CEL_VARIABLES = ['id', 'type', 'spec', 'labels', 'goal', 'deletionPolicy'] as const;
export type CelVariable = (typeof CEL_VARIABLES)[number];

/** What one evaluation binds, already converted to CEL values (see {@link toCelValue}). */
export type CelActivation = { readonly [V in CelVariable]: CelInput };

/** Static bounds that keep every evaluation cheap. */
export interface CelLimits {
  /** Longest expression, in characters. */
  readonly maxLength: number;
  /** Most AST nodes after macro expansion. */
  readonly maxNodes: number;
  /** Deepest AST nesting. */
  readonly maxDepth: number;
  /** Most nested comprehensions (`all`, `exists`, `map`, `filter` …): evaluation is O(n^k). */
  readonly maxComprehensionNesting: number;
  /**
   * Most loop steps (comprehension iterations, all loops together) in one
   * evaluation: n is the goal's data (a list in a spec, a string split), which
   * no static bound can see.
   */
  readonly maxLoopSteps: number;
  /**
   * Most cost of one evaluation, in units of about a nanosecond of work:
   * every call, loop step and list element, and text by its length
   * (cel-budget.ts). It bounds time and memory alike.
   */
  readonly maxCost: number;
}

export const defaultCelLimits: CelLimits = { maxLength: 2048, maxNodes: 400, maxDepth: 32, maxComprehensionNesting: 2, maxLoopSteps: 100_000, maxCost: 100_000_000 };

/** A compiled expression: plan once, run per node. */
export interface CelProgram {
  readonly source: string;
  /**
   * The one node path the expression reads (`['spec', 'encryption']`,
   * `['deletionPolicy']`), when it reads exactly one: findings point there.
   */
  readonly focus: readonly PathKey[] | undefined;
  /** The fields read directly from `spec` (`spec.name`, `has(spec.name)`, `spec['name']`), where they are in the expression (1-based). */
  readonly specFields: readonly SpecFieldRead[];
  /** True when the expression reads `spec` other than one named field at a time (`spec.all(k, …)`, `spec[k]`, `size(spec)`): any field. */
  readonly readsWholeSpec: boolean;
  /** The field, when the whole expression is one read of it (`spec.path`): its type alone says whether it yields a bool. */
  readonly wholeSpecField: string | undefined;
  /** Evaluates against one node; never throws. */
  run(activation: CelActivation): CelOutcome;
}

export interface SpecFieldRead {
  readonly name: string;
  readonly line: number;
  readonly col: number;
}

export type CelOutcome = { readonly status: 'value'; readonly value: boolean } | { readonly status: 'error'; readonly message: string };

export type CelCompileResult = { readonly ok: true; readonly program: CelProgram } | { readonly ok: false; readonly errors: readonly CelCompileError[] };

/** `line`/`col` are 1-based, inside the expression text. */
export interface CelCompileError {
  readonly message: string;
  readonly line: number;
  readonly col: number;
}

type CelLib = typeof CelModule;
interface Cel {
  readonly lib: CelLib;
  readonly env: CelEnv;
  readonly re2: typeof Re2;
  readonly overloads: ReadonlyMap<string, readonly CelFunc[]>;
  readonly functionNames: ReadonlySet<string>;
}
let loaded: Cel | undefined;
/**
 * @bufbuild/cel, loaded (synchronously, through its CommonJS build) the
 * first time a rule is compiled or evaluated: most goal sets have no CEL
 * rule, and its import is the largest part of the CLI's start-up.
 */
function cel(): Cel {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  const lib = require('@bufbuild/cel') as CelLib;
  const { strings } = require('@bufbuild/cel/ext') as typeof CelExt;
  const re2 = require('@bufbuild/re2') as typeof Re2;
  const { celEnv, CelScalar, mapType } = lib;
  const dynMap = mapType(CelScalar.STRING, CelScalar.DYN);
  const env = celEnv({
    funcs: budgetedFunctions(lib, strings, re2),
    variables: {
      id: CelScalar.STRING,
      type: CelScalar.STRING,
      spec: dynMap,
      labels: mapType(CelScalar.STRING, CelScalar.STRING),
      goal: dynMap,
      deletionPolicy: CelScalar.STRING,
    },
  });
  const overloads = overloadsByName(env);
  loaded = { lib, env, re2, overloads, functionNames: new Set(overloads.keys()) };
  return loaded;
}
/**
 * Overruns of one expression in one compile after which it is no longer evaluated there, failing
 * closed at once for the remaining nodes: each evaluation is bounded (about 0.1 s, 1 s at most), but
 * a rule that overruns on every node of thousands would still hold a compile, or a daemon's reload,
 * for minutes.
 */
const OVERRUNS_PER_COMPILE = 3;

let timeOverruns = 0;

/**
 * How many evaluations in this process so far were stopped by the time limit, not by their cost: a
 * compile during which this grew depends on the machine's load, not only on its goals, and is not
 * kept in the compiled-goal cache (the next command compiles again).
 */
export function evaluationTimeouts(): number {
  return timeOverruns;
}

const OVERRUN: Readonly<Record<Overrun['kind'], (limits: CelLimits) => string>> = {
  steps: (limits) => `evaluation stopped after more than ${limits.maxLoopSteps} loop steps (the limit)`,
  cost: (limits) => `evaluation stopped at its cost budget (${limits.maxCost} units, about ${limits.maxCost / 1e9} s of work)`,
  time: () => `evaluation stopped after ${MAX_EVALUATION_MS / 1000} s (the time limit)`,
};

/** Type names that CEL lets an expression use as values, for `type(x) == int`. */
const TYPE_IDENTS: ReadonlySet<string> = new Set(['int', 'uint', 'double', 'bool', 'string', 'bytes', 'list', 'map', 'null_type', 'type', 'dyn']);
const VARIABLES: ReadonlySet<string> = new Set(CEL_VARIABLES);

type Parsed = ReturnType<CelLib['parse']>;
type Expr = Parsed['expr'];

class StaticError extends Error {
  readonly exprId: bigint | undefined;
  constructor(message: string, exprId: bigint | undefined) {
    super(message);
    this.exprId = exprId;
  }
}

/**
 * Parses, checks and plans one expression. Never throws. `specFields`: what each field of `spec`
 * holds in the types the rule is for (a field not in it, any value); without it, any.
 */
export function compileCel(source: string, limits: CelLimits = defaultCelLimits, specFields?: SpecFieldKinds): CelCompileResult {
  const failed = (message: string, line = 1, col = 1): CelCompileResult => ({ ok: false, errors: [{ message, line, col }] });
  if (source.length > limits.maxLength) return failed(`expression is ${source.length} characters long; the limit is ${limits.maxLength}`);
  let parsed: Parsed;
  try {
    parsed = cel().lib.parse(source);
  } catch (err) {
    const where = (err as { location?: { start?: { line?: number; column?: number } } }).location?.start;
    const raw = (err as { rawMessage?: unknown }).rawMessage;
    const message = err instanceof RangeError ? 'expression is nested too deeply' : typeof raw === 'string' ? raw : errorMessage(err);
    return failed(`syntax error: ${message}`, where?.line, where?.column);
  }
  const positions = parsed.sourceInfo?.positions ?? {};
  const at = (id: bigint | undefined): { line: number; col: number } => {
    const offset = id === undefined ? undefined : positions[id.toString()];
    return offset === undefined ? { line: 1, col: 1 } : lineCol(source, offset);
  };
  let focus: Set<string>;
  const fieldReads = new Map<string, bigint>();
  const specReads = { fields: fieldReads, whole: false };
  try {
    focus = checkStatic(parsed.expr, limits, specReads);
  } catch (err) {
    if (err instanceof StaticError) return { ok: false, errors: [{ message: err.message, ...at(err.exprId) }] };
    return failed(errorMessage(err));
  }
  const notBool = visibleNonBool(parsed.expr);
  if (notBool !== undefined) return { ok: false, errors: [{ message: `expression yields ${notBool}, not a bool`, ...at(parsed.expr.id) }] };
  const issues: TypeIssue[] = [];
  const type = checkTypes(parsed.expr, { ...cel(), specFields }, issues);
  // One field read whole is said better by the caller, which knows the field's types.
  if (type !== undefined && !type.some((t) => t.name === 'bool') && wholeSpecField(parsed.expr) === undefined) {
    issues.push({ message: `expression yields ${names(type)}, not a bool`, exprId: parsed.expr.id });
  }
  if (issues.length > 0) return { ok: false, errors: issues.map((i) => ({ message: i.message, ...at(i.exprId) })) };
  instrument(parsed.expr);
  let evaluate: (ctx: CelActivation) => unknown;
  try {
    evaluate = cel().lib.plan(cel().env, parsed) as (ctx: CelActivation) => unknown;
  } catch (err) {
    return failed(errorMessage(err));
  }
  const only = focus.size === 1 ? [...focus][0]! : undefined;
  // A program lives for one compile of the goal set: past OVERRUNS_PER_COMPILE overruns of its cost or steps, it is not run again in it.
  let overruns = 0;
  const program: CelProgram = {
    source,
    focus: only === undefined ? undefined : (JSON.parse(only) as PathKey[]),
    specFields: [...fieldReads].map(([name, id]) => ({ name, ...at(id) })),
    readsWholeSpec: specReads.whole,
    wholeSpecField: wholeSpecField(parsed.expr),
    run(activation) {
      if (overruns >= OVERRUNS_PER_COMPILE) {
        return { status: 'error', message: `not evaluated: it went over its budget on ${OVERRUNS_PER_COMPILE} nodes already in this compile` };
      }
      let value: unknown;
      let thrown: unknown;
      startMeter(limits.maxCost, limits.maxLoopSteps);
      try {
        value = evaluate(activation);
      } catch (err) {
        thrown = err;
      }
      // Over budget, the value does not count, whatever it is: `||` may have absorbed the error.
      const overrun = stopMeter();
      if (overrun !== undefined) {
        // Only what the goals decide counts towards the cut-off: a time overrun may be the machine's load.
        if (overrun.kind === 'time') timeOverruns++;
        else overruns++;
        const where = overrun.exprId === undefined ? undefined : positions[overrun.exprId.toString()];
        const place = where === undefined ? '' : (({ line, col }) => ` at ${line}:${col} of the expression`)(lineCol(source, where));
        return { status: 'error', message: `${OVERRUN[overrun.kind](limits)}${place}` };
      }
      if (thrown !== undefined) return { status: 'error', message: errorMessage(thrown) };
      if (cel().lib.isCelError(value)) return { status: 'error', message: value.message };
      if (typeof value !== 'boolean') return { status: 'error', message: `expression yields ${describe(value)}, not a bool` };
      return { status: 'value', value };
    },
  };
  return { ok: true, program };
}

/**
 * Instruments comprehensions for the evaluation budget (cel-budget.ts), on
 * the parsed tree, after the static checks and before planning: the loop
 * condition is wrapped in {@link STEP} (one step per iteration), the range
 * in {@link RANGE} (iterating copies it), and the `@result + [x]` of `map`
 * and `filter` becomes {@link APPEND}. The planner reads only id and
 * exprKind: plain objects of that shape are enough.
 */
function instrument(e: Expr | undefined): void {
  if (e === undefined) return;
  const kind = e.exprKind;
  switch (kind.case) {
    case 'selectExpr':
      instrument(kind.value.operand);
      return;
    case 'callExpr': {
      const call = kind.value;
      instrument(call.target);
      for (const a of call.args) instrument(a);
      return;
    }
    case 'listExpr':
      for (const el of kind.value.elements) instrument(el);
      return;
    case 'structExpr':
      for (const entry of kind.value.entries) {
        if (entry.keyKind.case === 'mapKey') instrument(entry.keyKind.value);
        instrument(entry.value);
      }
      return;
    case 'comprehensionExpr': {
      const c = kind.value;
      for (const part of [c.iterRange, c.accuInit, c.loopCondition, c.loopStep, c.result]) instrument(part);
      if (c.loopCondition !== undefined) c.loopCondition = callOf(STEP, c.loopCondition);
      if (c.iterRange !== undefined) c.iterRange = callOf(RANGE, c.iterRange);
      appendInPlace(c.loopStep, c.accuVar);
      return;
    }
    default:
      return;
  }
}

function callOf(fn: string, arg: Expr): Expr {
  return { id: arg.id, exprKind: { case: 'callExpr', value: { function: fn, args: [arg], target: undefined } } } as unknown as Expr;
}

/** `accu + [x]` (map) or `cond ? accu + [x] : accu` (filter, map with a filter): the append becomes {@link APPEND}. */
function appendInPlace(step: Expr | undefined, accu: string): void {
  if (step?.exprKind.case !== 'callExpr') return;
  const call = step.exprKind.value;
  if (call.function === '_?_:_') {
    appendInPlace(call.args[1], accu);
    return;
  }
  const [left, right] = call.args;
  if (call.function === '_+_' && left?.exprKind.case === 'identExpr' && left.exprKind.value.name === accu && right?.exprKind.case === 'listExpr') {
    call.function = APPEND;
  }
}

const ARITHMETIC: Readonly<Record<string, string>> = { '_+_': '+', '_-_': '-', '_*_': '*', '_/_': '/', '_%_': '%', '-_': '-' };

/**
 * What a rule's expression yields when its outermost term already says it
 * is not a bool (a literal, arithmetic, a list or map); undefined when only
 * evaluation can tell. @bufbuild/cel does not export its type checker.
 */
function visibleNonBool(e: Expr): string | undefined {
  const kind = e.exprKind;
  switch (kind.case) {
    case 'constExpr': {
      const c = kind.value.constantKind.case;
      if (c === 'boolValue') return undefined;
      if (c === 'stringValue') return 'a string';
      if (c === 'bytesValue') return 'bytes';
      if (c === 'nullValue') return 'null';
      return c === undefined ? undefined : 'a number';
    }
    case 'callExpr': {
      const op = ARITHMETIC[kind.value.function];
      return op === undefined ? undefined : `an arithmetic result (${op})`;
    }
    case 'listExpr':
      return 'a list';
    case 'structExpr':
      return 'a map';
    default:
      return undefined;
  }
}

/** `X` when `e` is `spec.X` (a read, not `has(spec.X)`). */
function wholeSpecField(e: Expr): string | undefined {
  if (e.exprKind.case !== 'selectExpr') return undefined;
  const { operand, field, testOnly } = e.exprKind.value;
  return !testOnly && operand?.exprKind.case === 'identExpr' && operand.exprKind.value.name === 'spec' ? field : undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `the int ${v}`;
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a double';
  return 'a value';
}

function lineCol(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, col: offset - before.lastIndexOf('\n') };
}

/**
 * Unknown variables and functions are compile errors (the evaluator would
 * only find them per node); the AST is bounded. Returns the node paths read.
 */
function checkStatic(root: Expr, limits: CelLimits, specReads: { readonly fields: Map<string, bigint>; whole: boolean }): Set<string> {
  let nodes = 0;
  const focus = new Set<string>();
  const specFields = specReads.fields;
  // `spec` operands that read one named field; any other use of `spec` reads all of it.
  const oneField = new Set<Expr>();
  const visit = (e: Expr | undefined, depth: number, nesting: number, bound: ReadonlySet<string>): void => {
    if (e === undefined) return;
    nodes += 1;
    if (nodes > limits.maxNodes) throw new StaticError(`expression is too large (more than ${limits.maxNodes} terms)`, e.id);
    if (depth > limits.maxDepth) throw new StaticError(`expression is nested more than ${limits.maxDepth} levels deep`, e.id);
    const kind = e.exprKind;
    switch (kind.case) {
      case 'constExpr':
      case undefined:
        return;
      case 'identExpr': {
        const name = kind.value.name;
        if (bound.has(name) || VARIABLES.has(name) || TYPE_IDENTS.has(name)) {
          if (name === 'deletionPolicy' && !bound.has(name)) focus.add(JSON.stringify(['deletionPolicy']));
          if (name === 'spec' && !bound.has(name) && !oneField.has(e)) specReads.whole = true;
          return;
        }
        const near = didYouMean(name, [...VARIABLES, ...bound]);
        throw new StaticError(`unknown variable "${name}"; expressions see ${CEL_VARIABLES.join(', ')}${near === undefined ? '' : ` (did you mean "${near}"?)`}`, e.id);
      }
      case 'selectExpr': {
        const operand = kind.value.operand;
        if (operand?.exprKind.case === 'identExpr' && !bound.has(operand.exprKind.value.name)) {
          const rootName = operand.exprKind.value.name;
          if (rootName === 'spec' || rootName === 'labels') focus.add(JSON.stringify([rootName, kind.value.field]));
          if (rootName === 'spec') {
            oneField.add(operand);
            if (!specFields.has(kind.value.field)) specFields.set(kind.value.field, e.id);
          }
        }
        visit(operand, depth + 1, nesting, bound);
        return;
      }
      case 'callExpr': {
        const fn = kind.value.function;
        if (/^[A-Za-z]/.test(fn) && !cel().functionNames.has(fn)) {
          const near = didYouMean(fn, cel().functionNames);
          throw new StaticError(`unknown function "${fn}"${near === undefined ? '' : ` (did you mean "${near}"?)`}`, e.id);
        }
        const [operand, key] = kind.value.args;
        if (fn === '_[_]' && operand?.exprKind.case === 'identExpr' && operand.exprKind.value.name === 'spec' && !bound.has('spec')) {
          const k = key?.exprKind.case === 'constExpr' ? key.exprKind.value.constantKind : undefined;
          if (k?.case === 'stringValue') {
            oneField.add(operand);
            if (!specFields.has(k.value)) specFields.set(k.value, e.id);
          }
        }
        visit(kind.value.target, depth + 1, nesting, bound);
        for (const a of kind.value.args) visit(a, depth + 1, nesting, bound);
        return;
      }
      case 'listExpr':
        for (const el of kind.value.elements) visit(el, depth + 1, nesting, bound);
        return;
      case 'structExpr':
        if (kind.value.messageName !== '') throw new StaticError(`message construction (${kind.value.messageName}{…}) is not available in policy rules`, e.id);
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === 'mapKey') visit(entry.keyKind.value, depth + 1, nesting, bound);
          visit(entry.value, depth + 1, nesting, bound);
        }
        return;
      case 'comprehensionExpr': {
        const c = kind.value;
        if (nesting + 1 > limits.maxComprehensionNesting) {
          throw new StaticError(`more than ${limits.maxComprehensionNesting} nested comprehensions (all, exists, map, filter)`, e.id);
        }
        visit(c.iterRange, depth + 1, nesting, bound);
        visit(c.accuInit, depth + 1, nesting, bound);
        const inner = new Set([...bound, c.iterVar, c.accuVar, ...(c.iterVar2 === '' ? [] : [c.iterVar2])]);
        visit(c.loopCondition, depth + 1, nesting + 1, inner);
        visit(c.loopStep, depth + 1, nesting + 1, inner);
        visit(c.result, depth + 1, nesting, new Set([...bound, c.accuVar]));
        return;
      }
      default:
        return;
    }
  };
  visit(root, 1, 0, new Set());
  return focus;
}

/**
 * Converts JSON-like data (a parsed spec) for CEL: whole numbers become
 * `int` so that `spec.connectionLimit == 20` holds; other numbers stay
 * `double`; `undefined` fields are left out (so `has()` is false); maps
 * and lists become CEL maps and lists, converted once per node.
 */
export function toCelValue(value: unknown, depth = 0): CelInput {
  if (depth > 64) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
    case 'bigint':
      return value;
    case 'number':
      return Number.isSafeInteger(value) ? BigInt(value) : value;
    case 'object': {
      if (value === null) return null;
      // Built as CEL maps and lists once: a plain object would be converted
      // again on every access, by every rule.
      if (Array.isArray(value)) return cel().lib.celList(value.map((v) => toCelValue(v, depth + 1)));
      const out = new Map<string, CelInput>();
      for (const [k, v] of Object.entries(value)) if (v !== undefined) out.set(k, toCelValue(v, depth + 1));
      return cel().lib.celMap(out);
    }
    default:
      return null;
  }
}
