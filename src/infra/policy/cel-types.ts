import type * as CelModule from '@bufbuild/cel';
import type { CelEnv, CelFunc, CelType } from '@bufbuild/cel';
import type * as Re2 from '@bufbuild/re2';
import { didYouMean, errorMessage } from '../../runtime/index.ts';

/**
 * The type check of a policy rule's expression, at load: what would be an
 * error on every node it is evaluated for (`spec.path + 1`, `goal.enviroment`,
 * `matches('(')`) is said once, at the rule. @bufbuild/cel 0.6 exports no
 * type checker (its `Checker` types constants and names only), so this one
 * resolves each call against the overloads of the environment the rule is
 * evaluated in. It errs on the side of the rule: a type it cannot know is any
 * type, and an error is one that evaluation would raise whatever the data.
 */

type CelLib = typeof CelModule;
type Expr = ReturnType<CelLib['parse']>['expr'];

/** The kinds of value a spec field holds, as its schema says (`number` is an int or a double); undefined: any. */
export type FieldKind = 'string' | 'int' | 'double' | 'bool' | 'list' | 'map' | 'null';
export type SpecFieldKinds = ReadonlyMap<string, readonly FieldKind[] | undefined>;

/** One type error, at the expression's term that has it. */
export interface TypeIssue {
  readonly message: string;
  readonly exprId: bigint;
}

/** The types a term may have; undefined: any (dyn). */
type Ty = readonly CelType[] | undefined;

/** The fields of `goal`, a fixed shape. */
const GOAL_FIELDS = ['name', 'environment', 'labels'] as const;

const OPERATORS: Readonly<Record<string, string>> = {
  '_+_': '+', '_-_': '-', '_*_': '*', '_/_': '/', '_%_': '%', '-_': '-', '!_': '!',
  '_<_': '<', '_<=_': '<=', '_>_': '>', '_>=_': '>=', '_==_': '==', '_!=_': '!=', '@in': 'in',
};

/**
 * Types `root` (whose names checkStatic has already checked) and returns its type; every error
 * found is added to `issues`, not only the first.
 */
/** The environment's functions by name: built once per environment, not for every rule typed. */
export function overloadsByName(env: CelEnv): Map<string, CelFunc[]> {
  const overloads = new Map<string, CelFunc[]>();
  for (const f of env.funcs) (overloads.get(f.name) ?? overloads.set(f.name, []).get(f.name)!).push(f);
  return overloads;
}

export function checkTypes(
  root: Expr,
  ctx: { readonly lib: CelLib; readonly overloads: ReadonlyMap<string, readonly CelFunc[]>; readonly re2: typeof Re2; readonly specFields: SpecFieldKinds | undefined },
  issues: TypeIssue[],
): Ty {
  const { CelScalar, listType, mapType } = ctx.lib;
  const S = CelScalar;
  const dynMap = mapType(S.STRING, S.DYN);
  const { overloads } = ctx;
  const kindType: Readonly<Record<FieldKind, CelType>> = { string: S.STRING, int: S.INT, double: S.DOUBLE, bool: S.BOOL, list: listType(S.DYN), map: dynMap, null: S.NULL };
  const globals: Readonly<Record<string, Ty>> = {
    id: [S.STRING], type: [S.STRING], deletionPolicy: [S.STRING], labels: [mapType(S.STRING, S.STRING)], spec: [dynMap], goal: [dynMap],
  };
  const goalFields: Readonly<Record<(typeof GOAL_FIELDS)[number], Ty>> = { name: [S.STRING], environment: [S.STRING], labels: [mapType(S.STRING, S.STRING)] };
  const fail = (e: Expr, message: string): Ty => {
    issues.push({ message, exprId: e.id });
    return undefined;
  };

  const visit = (e: Expr | undefined, scope: ReadonlyMap<string, Ty>): Ty => {
    if (e === undefined) return undefined;
    const kind = e.exprKind;
    switch (kind.case) {
      case 'constExpr':
        switch (kind.value.constantKind.case) {
          case 'boolValue': return [S.BOOL];
          case 'int64Value': return [S.INT];
          case 'uint64Value': return [S.UINT];
          case 'doubleValue': return [S.DOUBLE];
          case 'stringValue': return [S.STRING];
          case 'bytesValue': return [S.BYTES];
          case 'nullValue': return [S.NULL];
          default: return undefined;
        }
      case 'identExpr': {
        const name = kind.value.name;
        if (scope.has(name)) return scope.get(name);
        return Object.hasOwn(globals, name) ? globals[name] : [S.TYPE];
      }
      case 'selectExpr': {
        const { operand, field, testOnly } = kind.value;
        const global = operand?.exprKind.case === 'identExpr' && !scope.has(operand.exprKind.value.name) ? operand.exprKind.value.name : undefined;
        if (global === 'spec') return testOnly ? [S.BOOL] : fieldType(ctx.specFields?.get(field));
        if (global === 'goal' && !testOnly) {
          if (Object.hasOwn(goalFields, field)) return goalFields[field as keyof typeof goalFields];
          const near = didYouMean(field, GOAL_FIELDS);
          return fail(e, `goal has no field "${field}"${near === undefined ? '' : ` (did you mean "${near}"?)`}; it has ${GOAL_FIELDS.join(', ')}`);
        }
        const of = visit(operand, scope);
        if (of !== undefined && !of.some((t) => isDyn(t) || t.kind === 'map')) return fail(e, `${names(of)} has no field "${field}"`);
        return testOnly ? [S.BOOL] : union(of?.map((t) => (t.kind === 'map' ? t.value : S.DYN)));
      }
      case 'listExpr': {
        const elements = kind.value.elements.map((el) => visit(el, scope));
        const only = union(elements.flatMap((t) => t ?? [S.DYN]));
        return [listType(only?.length === 1 ? only[0]! : S.DYN)];
      }
      case 'structExpr':
        for (const entry of kind.value.entries) {
          if (entry.keyKind.case === 'mapKey') visit(entry.keyKind.value, scope);
          visit(entry.value, scope);
        }
        return [mapType(S.DYN, S.DYN)];
      case 'comprehensionExpr': {
        const c = kind.value;
        const range = visit(c.iterRange, scope);
        const accu = visit(c.accuInit, scope);
        const first = union(range?.map((t) => (t.kind === 'list' ? (c.iterVar2 === '' ? t.element : S.INT) : t.kind === 'map' ? t.key : S.DYN)));
        const second = union(range?.map((t) => (t.kind === 'list' ? t.element : t.kind === 'map' ? t.value : S.DYN)));
        const inner = new Map([...scope, [c.iterVar, first], [c.accuVar, accu], ...(c.iterVar2 === '' ? [] : [[c.iterVar2, second] as const])]);
        visit(c.loopCondition, inner);
        visit(c.loopStep, inner);
        return visit(c.result, new Map([...scope, [c.accuVar, accu]]));
      }
      case 'callExpr':
        return call(e, kind.value, scope);
      default:
        return undefined;
    }
  };

  const call = (e: Expr, c: { function: string; target?: Expr | undefined; args: Expr[] }, scope: ReadonlyMap<string, Ty>): Ty => {
    const fn = c.function;
    const target = c.target === undefined ? undefined : visit(c.target, scope);
    const args = c.args.map((a) => visit(a, scope));
    switch (fn) {
      case '_&&_':
      case '_||_': {
        const op = fn === '_&&_' ? '&&' : '||';
        args.forEach((t, i) => {
          if (t !== undefined && !t.some((x) => isDyn(x) || x.name === 'bool')) fail(c.args[i]!, `${op} takes bools; this is ${names(t)}`);
        });
        return [S.BOOL];
      }
      case '_?_:_': {
        const cond = args[0];
        if (cond !== undefined && !cond.some((x) => isDyn(x) || x.name === 'bool')) fail(c.args[0]!, `the condition of ?: is ${names(cond)}, not a bool`);
        return args[1] === undefined || args[2] === undefined ? undefined : union([...args[1], ...args[2]]);
      }
      case '@not_strictly_false':
        return [S.BOOL];
      case '_[_]': {
        const [of, key] = args;
        if (of === undefined) return undefined;
        if (!of.some((t) => isDyn(t) || t.kind === 'list' || t.kind === 'map')) return fail(e, `[…] indexes a list or a map; this is ${names(of)}`);
        if (key !== undefined && of.every((t) => t.kind === 'list') && !key.some((t) => isDyn(t) || t.name === 'int' || t.name === 'uint')) {
          return fail(c.args[1]!, `a list's index is an int; this is ${names(key)}`);
        }
        return union(of.map((t) => (t.kind === 'list' ? t.element : t.kind === 'map' ? t.value : S.DYN)));
      }
      default:
        break;
    }
    if (fn === 'matches') checkPattern(c.target === undefined ? c.args[1] : c.args[0]);
    const candidates = (overloads.get(fn) ?? []).filter((f) => (f.target === undefined) === (c.target === undefined) && f.arguments.length === args.length);
    // An arity or form the environment has no overload of: left to evaluation, which names it.
    if (candidates.length === 0) return undefined;
    const fitting = candidates.filter((f) => (f.target === undefined || fitsAny(f.target, target)) && f.arguments.every((p, i) => fitsAny(p, args[i])));
    if (fitting.length === 0) {
      const shown = args.map((t) => (t === undefined ? 'dyn' : names(t)));
      const op = OPERATORS[fn];
      if (op !== undefined) return fail(e, shown.length === 1 ? `${op} cannot be applied to ${shown[0]}` : `${op} cannot be applied to ${shown.join(' and ')}`);
      const on = c.target === undefined ? '' : ` on ${target === undefined ? 'dyn' : names(target)}`;
      return fail(e, `${fn}(${shown.join(', ')})${on} is not defined`);
    }
    return union(fitting.map((f) => f.result));
  };

  /** A constant `matches` pattern, compiled as evaluation compiles it. */
  const checkPattern = (pattern: Expr | undefined): void => {
    const k = pattern?.exprKind.case === 'constExpr' ? pattern.exprKind.value.constantKind : undefined;
    if (k?.case !== 'stringValue') return;
    try {
      ctx.re2.RE2JS.compile(k.value);
    } catch (err) {
      fail(pattern!, `the pattern of matches() does not compile: ${errorMessage(err)}`);
    }
  };

  const fieldType = (kinds: readonly FieldKind[] | undefined): Ty => (kinds === undefined ? undefined : kinds.map((k) => kindType[k]));
  return visit(root, new Map());
}

function isDyn(t: CelType): boolean {
  return t.kind === 'scalar' && t.scalar === 'dyn';
}

/** Whether a value of one of `arg`'s types may be passed for `param`. */
function fitsAny(param: CelType, arg: Ty): boolean {
  return arg === undefined || arg.some((a) => fits(param, a));
}

function fits(param: CelType, arg: CelType): boolean {
  if (isDyn(param) || isDyn(arg)) return true;
  if (param.kind === 'list' && arg.kind === 'list') return fits(param.element, arg.element);
  if (param.kind === 'map' && arg.kind === 'map') return fits(param.key, arg.key) && fits(param.value, arg.value);
  return param.kind === arg.kind && param.name === arg.name;
}

/** The types, each once; undefined (any) when one of them is dyn. */
function union(types: readonly CelType[] | undefined): Ty {
  if (types === undefined || types.some(isDyn)) return undefined;
  const seen = new Map(types.map((t) => [t.toString(), t]));
  return [...seen.values()];
}

/** `a string`, `an int or a double`, as a message says them. */
export function names(types: readonly CelType[]): string {
  return types.map((t) => (t.kind === 'scalar' ? ARTICLE[t.scalar] ?? t.scalar : t.kind === 'list' ? 'a list' : t.kind === 'map' ? 'a map' : t.name)).join(' or ');
}

const ARTICLE: Readonly<Record<string, string>> = { int: 'an int', uint: 'a uint', double: 'a double', bool: 'a bool', string: 'a string', bytes: 'bytes', null_type: 'null', type: 'a type' };
