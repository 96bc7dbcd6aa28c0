import type { z } from 'zod';
import { formatPath, ownValue, suggestion, zodIssueMessages } from '../../runtime/index.ts';
import type { DiagnosticBag, PathKey, SourceLocation } from '../../runtime/index.ts';
import { INFRA_NODE_TYPES, secretFields, specSchemas } from '../spec.ts';
import type { InfraNodeType } from '../spec.ts';
import { compileCel } from './cel.ts';
import type { CelLimits, CelProgram } from './cel.ts';
import type { FieldKind, SpecFieldKinds } from './cel-types.ts';
import { compileNamePattern } from './naming.ts';
import type { NamePattern, PatternError } from './naming.ts';
import type { Framework, Level, PolicySpec, SeverityMap } from './schema.ts';

/** What a check tests, by kind. */
export type CheckBody =
  | { readonly kind: 'naming'; readonly field: string; readonly pattern: NamePattern }
  | { readonly kind: 'required-label'; readonly key: string; readonly pattern: NamePattern | undefined }
  | {
      readonly kind: 'rule';
      readonly when: CelProgram | undefined;
      readonly require: CelProgram;
      /** Where each expression is written, for an error in evaluating it. */
      readonly at: { readonly when: SourceLocation; readonly require: SourceLocation };
    };

/** One rule of a policy, compiled: patterns and CEL programs built once. */
export interface CompiledCheck {
  readonly policy: string;
  readonly id: string;
  readonly description: string;
  /** Undefined: every type. */
  readonly types: ReadonlySet<InfraNodeType> | undefined;
  readonly severity: SeverityMap;
  readonly frameworks: readonly Framework[];
  readonly blockAt: Level;
  readonly body: CheckBody;
}

/**
 * An environment-aware default, each value validated against its field's
 * schema in each type here, at load; a node's spec with its defaults is
 * validated whole where the node is built (rules across fields, the backend's checks).
 */
export interface CompiledDefault {
  readonly policy: string;
  readonly types: ReadonlySet<InfraNodeType>;
  /** Undefined: every environment. */
  readonly environments: ReadonlySet<string> | undefined;
  readonly set: readonly (readonly [field: string, value: unknown])[];
  /** Where each field of `set` is written, for conflicts between defaults and for errors a value causes in a node. */
  readonly locations: ReadonlyMap<string, SourceLocation>;
}

/** An environment name a policy mentions, for "did you mean" once the goals' environments are known. */
export interface EnvironmentReference {
  readonly name: string;
  readonly location: SourceLocation;
}

export interface CompiledPolicySpec {
  readonly checks: CompiledCheck[];
  readonly defaults: CompiledDefault[];
  readonly environments: EnvironmentReference[];
}

/**
 * An entry of a Policy with errors that cannot be compiled (see
 * `CelPolicyEngine.checkSalvage`), whose id is still claimed where the entry
 * stands, so that a second entry of that id is reported now: before kept
 * entry `before` of `list`.
 */
export interface UncheckedEntry {
  readonly list: 'naming' | 'requiredLabels' | 'rules';
  readonly before: number;
  readonly id: string;
  readonly location: SourceLocation;
}

/** Where a policy's text is, for diagnostics: a path inside the document's `spec`. */
export type SpecLocator = (path: readonly PathKey[], part?: 'key' | 'value') => SourceLocation;
/** Where character `index` of the string at a path inside the document's `spec` is (its start where the source cannot say). */
export type SpecTextLocator = (path: readonly PathKey[], index: number) => SourceLocation;

/**
 * Compiles a parsed Policy `spec` (a user's or a built-in pack's). Every
 * problem is reported at its place; a broken entry is left out, the rest kept.
 */
export function compilePolicySpec(
  options: {
    policy: string;
    spec: PolicySpec;
    at: SpecLocator;
    atIn?: SpecTextLocator | undefined;
    diag: DiagnosticBag;
    celLimits?: CelLimits | undefined;
    unchecked?: readonly UncheckedEntry[] | undefined;
    /**
     * Whether the entry at a path (`['rules', 2]`) has `types` in error, reported already, every type
     * standing in: what reads a type's fields is not checked for it, the rest is.
     */
    untyped?: ((entry: readonly PathKey[]) => boolean) | undefined;
  },
): CompiledPolicySpec {
  const { policy, spec, at, diag } = options;
  /**
   * An expression's error at its line and column inside the expression, as a place in the file (inside
   * a block scalar, past escapes and folds); where the source cannot say, the expression's start, with
   * the place inside it in the message.
   */
  const inExpression = (path: readonly PathKey[], source: string, line: number, col: number): { readonly loc: SourceLocation; readonly where: string } => {
    const start = at(path);
    if (line === 1 && col === 1) return { loc: start, where: '' };
    const where = ` (at ${line}:${col} of the expression)`;
    const index = indexOf(source, line, col);
    const loc = index === undefined || options.atIn === undefined ? start : options.atIn(path, index);
    return loc.line === start.line && loc.col === start.col ? { loc: start, where } : { loc, where: '' };
  };
  /** Each error of a pattern at its place in the string, where the source can say. */
  const reportPattern = (path: readonly PathKey[], errors: readonly PatternError[]): void => {
    for (const e of errors) diag.error(e.index === undefined || options.atIn === undefined ? at(path) : options.atIn(path, e.index), 'bad-pattern', e.message);
  };
  const checks: CompiledCheck[] = [];
  const defaults: CompiledDefault[] = [];
  const environments: EnvironmentReference[] = [];
  const ids = new Map<string, SourceLocation>();

  const claimAt = (id: string, loc: SourceLocation): boolean => {
    const earlier = ids.get(id);
    if (earlier !== undefined) {
      diag.error(loc, 'duplicate-rule', `rule id "${id}" is already used in policy ${policy} at ${earlier.file}:${earlier.line}:${earlier.col}; give this entry an id`);
      return false;
    }
    ids.set(id, loc);
    return true;
  };
  const unchecked = [...(options.unchecked ?? [])];
  /** Claims the ids of the unchecked entries of `list` that stand before its kept entry `before`. */
  const claimUnchecked = (list: UncheckedEntry['list'], before: number): void => {
    for (const u of unchecked.filter((e) => e.list === list && e.before <= before)) {
      claimAt(u.id, u.location);
      unchecked.splice(unchecked.indexOf(u), 1);
    }
  };
  const claimId = (id: string, path: readonly PathKey[]): boolean => {
    const [list, index] = path;
    if (typeof index === 'number') claimUnchecked(list as UncheckedEntry['list'], index);
    return claimAt(id, at(path));
  };
  const noteEnvironments = (severity: SeverityMap, path: readonly PathKey[]): void => {
    for (const name of Object.keys(severity)) if (name !== 'default') environments.push({ name, location: at([...path, name], 'key') });
  };
  const base = { policy, blockAt: spec.blockAt } as const;

  spec.naming.forEach((n, i) => {
    const path = ['naming', i];
    let ok = true;
    for (const t of options.untyped?.(path) === true ? [] : n.types) {
      const fields = stringFieldsOf(t);
      if (!fields.includes(n.field)) {
        diag.error(at([...path, 'field']), 'unknown-field', `naming field "${n.field}" is not a text field of ${t}${suggestion(n.field, fields)}`);
        ok = false;
      }
    }
    const compiled = compileNamePattern(n.pattern);
    if (!compiled.ok) {
      reportPattern([...path, 'pattern'], compiled.errors);
      ok = false;
    }
    noteEnvironments(n.severity, [...path, 'severity']);
    const id = n.id ?? `naming:${n.field}`;
    if (!claimId(id, n.id === undefined ? [...path, 'field'] : [...path, 'id']) || !ok || !compiled.ok) return;
    checks.push({
      ...base,
      id,
      description: n.description ?? `${formatPath(['spec', n.field])} of ${n.types.join(', ')} matches ${n.pattern}`,
      types: new Set(n.types),
      severity: n.severity,
      frameworks: n.frameworks,
      body: { kind: 'naming', field: n.field, pattern: compiled.pattern },
    });
  });

  claimUnchecked('naming', Infinity);

  spec.requiredLabels.forEach((r, i) => {
    const path = ['requiredLabels', i];
    let pattern: NamePattern | undefined;
    let ok = true;
    if (r.pattern !== undefined) {
      // A label's pattern takes {env} and {label.<key>} as a naming pattern does.
      const compiled = compileNamePattern(r.pattern);
      if (compiled.ok) pattern = compiled.pattern;
      else {
        reportPattern([...path, 'pattern'], compiled.errors);
        ok = false;
      }
    }
    noteEnvironments(r.severity, [...path, 'severity']);
    const id = r.id ?? `required-label:${r.key}`;
    if (!claimId(id, r.id === undefined ? [...path, 'key'] : [...path, 'id']) || !ok) return;
    checks.push({
      ...base,
      id,
      description: r.description ?? `Nodes carry the label "${r.key}"${r.pattern === undefined ? '' : ` matching ${r.pattern}`}.`,
      types: r.types === undefined ? undefined : new Set(r.types),
      severity: r.severity,
      frameworks: r.frameworks,
      body: { kind: 'required-label', key: r.key, pattern },
    });
  });

  claimUnchecked('requiredLabels', Infinity);

  spec.rules.forEach((r, i) => {
    const path = ['rules', i];
    const untyped = options.untyped?.(path) === true;
    const types = r.types ?? INFRA_NODE_TYPES;
    const fields = new Set(types.flatMap((t) => Object.keys(shapeOf(t))));
    const kinds = untyped ? undefined : specFieldKinds(types);
    const compile = (field: 'when' | 'require', source: string): CelProgram | undefined => {
      const result = compileCel(source, options.celLimits, kinds);
      if (result.ok && untyped) return result.program;
      if (result.ok) {
        // The loader knows every type's fields: a misspelt one is a compile error, not a rule error on every node.
        const known = new Set(['type', ...fields]);
        let ok = true;
        const of = r.types === undefined ? 'any type' : r.types.join(', ');
        for (const read of result.program.specFields) {
          if (known.has(read.name)) continue;
          const { loc, where } = inExpression([...path, field], source, read.line, read.col);
          diag.error(loc, 'bad-expression', `rule ${r.id}: ${field}: spec.${read.name} is not a field of ${of}${suggestion(read.name, fields)}${where}`);
          ok = false;
        }
        // The whole expression one field that is no bool in any of the types: an error on every node, said once here.
        const whole = result.program.wholeSpecField;
        const kinds = whole === undefined || !fields.has(whole) ? [] : [...new Set(types.flatMap((t) => (whole in shapeOf(t) ? [baseType(shapeOf(t)[whole]!)] : [])))];
        if (whole !== undefined && kinds.length > 0 && kinds.every((k) => NOT_BOOL[k] !== undefined)) {
          const what = [...new Set(kinds.map((k) => NOT_BOOL[k]!))].join(' or ');
          diag.error(at([...path, field]), 'bad-expression', `rule ${r.id}: ${field}: spec.${whole} is ${what} in ${of}, not a bool: compare it (spec.${whole} == …) or test it (has(spec.${whole}))`);
          ok = false;
        }
        return ok ? result.program : undefined;
      }
      for (const error of result.errors) {
        const { loc, where } = inExpression([...path, field], source, error.line, error.col);
        diag.error(loc, 'bad-expression', `rule ${r.id}: ${field}: ${error.message}${where}`);
      }
      return undefined;
    };
    const when = r.when === undefined ? undefined : compile('when', r.when);
    const require = compile('require', r.require);
    noteEnvironments(r.severity, [...path, 'severity']);
    if (!claimId(r.id, [...path, 'id'])) return;
    if (require === undefined || (r.when !== undefined && when === undefined)) return;
    checks.push({
      ...base,
      id: r.id,
      description: r.description,
      types: r.types === undefined ? undefined : new Set(r.types),
      severity: r.severity,
      frameworks: r.frameworks,
      body: { kind: 'rule', when, require, at: { when: at([...path, 'when']), require: at([...path, 'require']) } },
    });
  });

  claimUnchecked('rules', Infinity);

  spec.defaults.forEach((d, i) => {
    const path = ['defaults', i];
    let ok = true;
    for (const [field, value] of Object.entries(d.set)) {
      for (const t of options.untyped?.(path) === true ? [] : d.types) {
        const shape = shapeOf(t);
        const schema = ownValue(shape, field);
        if (schema === undefined) {
          diag.error(at([...path, 'set', field], 'key'), 'unknown-field', `${field} is not a field of ${t}${suggestion(field, Object.keys(shape))}`);
          ok = false;
          continue;
        }
        if (secretFields[t]?.includes(field) === true) {
          diag.error(at([...path, 'set', field], 'key'), 'secret-default', `${field} of ${t} holds a secret; a policy cannot set it`);
          ok = false;
          continue;
        }
        const parsed = schema.safeParse(value);
        if (!parsed.success) {
          // Said as a goal's own value would be (not zod's "Too big: expected int to be <=…"), naming the type.
          const said = zodIssueMessages(parsed.error.issues, { schema, input: value, prefix: [field], owner: t })[0];
          const shown = said === undefined ? field : formatPath([field, ...said.path]);
          const message = said === undefined ? `${field}: invalid value` : said.message.startsWith(shown) ? said.message.slice(shown.length) : `: ${said.message}`;
          diag.error(at([...path, 'set', field]), 'invalid-value', `${shown} of ${t}${message}`);
          ok = false;
        }
      }
      // Every "${" of a compiled spec is a node reference or an escape, resolved before a backend sees it;
      // a default is put in after that, so one of its own would reach the backend as written.
      const template = templatePath(value);
      if (template !== undefined) {
        diag.error(at([...path, 'set', field, ...template]), 'bad-interpolation', `${field}: policy defaults are literal values; "\${" (an expression or an escape) is not available in them`);
        ok = false;
      }
    }
    for (const [j, name] of (d.environments ?? []).entries()) environments.push({ name, location: at([...path, 'environments', j]) });
    if (!ok) return;
    defaults.push({
      policy,
      types: new Set(d.types),
      environments: d.environments === undefined ? undefined : new Set(d.environments),
      set: Object.entries(d.set),
      locations: new Map(Object.keys(d.set).map((field) => [field, at([...path, 'set', field], 'key')])),
    });
  });

  return { checks, defaults, environments };
}

/** The index in `source` of 1-based `line` and `col` (UTF-16 units, as the CEL parser counts), or undefined past its end. */
function indexOf(source: string, line: number, col: number): number | undefined {
  let start = 0;
  for (let l = 1; l < line; l++) {
    const next = source.indexOf('\n', start);
    if (next === -1) return undefined;
    start = next + 1;
  }
  const index = start + col - 1;
  return index <= source.length ? index : undefined;
}

/** The path (inside `value`) of the first string holding "${", or undefined. */
function templatePath(value: unknown): PathKey[] | undefined {
  if (typeof value === 'string') return value.includes('${') ? [] : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [k, v] of Array.isArray(value) ? value.entries() : Object.entries(value)) {
    const inner = templatePath(v);
    if (inner !== undefined) return [k, ...inner];
  }
  return undefined;
}

function shapeOf(t: InfraNodeType): Readonly<Record<string, z.ZodType>> {
  return specSchemas[t].shape as Readonly<Record<string, z.ZodType>>;
}

/** Fields of a type that can hold a name: plain strings (through optional and default). */
function stringFieldsOf(t: InfraNodeType): string[] {
  return Object.entries(shapeOf(t))
    .filter(([, s]) => isStringSchema(s))
    .map(([k]) => k);
}

function isStringSchema(schema: z.ZodType): boolean {
  return baseType(schema) === 'string';
}

/** A field's zod type under optional, default and nullable (`string`, `boolean`, `array` …). */
function baseType(schema: z.ZodType): string {
  return unwrap(schema).def.type;
}

interface ZodDef {
  readonly type: string;
  readonly innerType?: z.ZodType;
  readonly checks?: readonly { readonly _zod: { readonly def: { readonly format?: string } } }[];
}

/** A field's zod definition under optional, default and nullable, and whether null passes them. */
function unwrap(schema: z.ZodType): { readonly def: ZodDef; readonly nullable: boolean } {
  let def = (schema as unknown as { _zod: { def: ZodDef } })._zod.def;
  let nullable = false;
  for (let i = 0; i < 8 && def.innerType !== undefined && (def.type === 'optional' || def.type === 'default' || def.type === 'nullable'); i++) {
    nullable ||= def.type === 'nullable';
    def = (def.innerType as unknown as { _zod: { def: ZodDef } })._zod.def;
  }
  return { def, nullable };
}

/**
 * What each field holds in one of `types` (`spec.type` a string), for the type check of a rule's
 * expression: a field of several types may hold what any of them does.
 */
function specFieldKinds(types: readonly InfraNodeType[]): SpecFieldKinds {
  const kinds = new Map<string, FieldKind[] | undefined>([['type', ['string']]]);
  for (const t of types) {
    for (const [field, schema] of Object.entries(shapeOf(t))) {
      const had = kinds.has(field) ? kinds.get(field) : [];
      const own = fieldKinds(schema);
      kinds.set(field, had === undefined || own === undefined ? undefined : [...new Set([...had, ...own])]);
    }
  }
  return kinds;
}

/** The CEL kinds of value a field's schema lets through (a whole number is an int, as toCelValue makes it); undefined: any. */
function fieldKinds(schema: z.ZodType): FieldKind[] | undefined {
  const { def, nullable } = unwrap(schema);
  const safeInt = def.type === 'number' && (def.checks ?? []).some((c) => c._zod.def.format === 'safeint');
  const own: readonly FieldKind[] | undefined = def.type === 'number' ? (safeInt ? ['int'] : ['int', 'double']) : ownValue(KINDS, def.type);
  return own === undefined ? undefined : nullable ? [...own, 'null'] : [...own];
}

const KINDS: Readonly<Record<string, readonly FieldKind[]>> = { string: ['string'], enum: ['string'], boolean: ['bool'], array: ['list'], object: ['map'], record: ['map'] };

/** The zod types a CEL read yields no bool from, as the error names them. */
const NOT_BOOL: Readonly<Record<string, string>> = { string: 'a string', enum: 'a string', number: 'a number', int: 'a number', array: 'a list', object: 'a map', record: 'a map' };
