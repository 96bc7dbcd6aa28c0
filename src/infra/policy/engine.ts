import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import { assertNever, didYouMean, formatLocation, formatPath, isJsonObject, meantInput, ownValue, reportZodIssues, suggestion, valueAtPath } from '../../runtime/index.ts';
import type { Diagnostic, DiagnosticBag, GoalInfo, MeantInput, NodeDeclaration, NodeGate, PathKey, RawDocument, SourceLocation } from '../../runtime/index.ts';
import type { AppliedDefault, PolicyEngine, PolicyVerdict } from '../policy.ts';
import { maskShownSecrets, shownSpec } from '../secret-mask.ts';
import { INFRA_NODE_TYPES } from '../spec.ts';
import type { InfraNodeSpec, InfraNodeType } from '../spec.ts';
import { BUILTIN_PACKS } from './baseline.ts';
import { toCelValue } from './cel.ts';
import type { CelActivation, CelLimits, CelProgram } from './cel.ts';
import { compilePolicySpec } from './compile.ts';
import type { CompiledCheck, CompiledDefault, EnvironmentReference, UncheckedEntry } from './compile.ts';
import { findingText } from './finding.ts';
import type { Finding, FindingKind } from './finding.ts';
import { MAX_MATCHED_LENGTH } from './naming.ts';
import type { LinearRegex, NamePattern } from './naming.ts';
import { warnUnmatchedProduction } from './pack-environments.ts';
import { checkReport } from './report.ts';
import type { CheckReport, EvaluatedNode, RuleInfo } from './report.ts';
import { compareLevels, levelFor, policyDocumentSchema, policySpecSchema, RULE_ID_PATTERN } from './schema.ts';
import type { Level, PolicySpecInput } from './schema.ts';

/**
 * Stand-ins for an entry's fields that say what a finding means but that no
 * compile-time check reads: an entry whose only errors are there still has
 * its patterns, CEL, fields and types checked.
 */
const UNCHECKED_FIELDS: Readonly<Record<string, unknown>> = { description: 'unchecked', severity: { default: 'info' }, frameworks: [] };

/**
 * A Policy entry as far as it can be checked, or undefined: itself, with its unchecked fields' errors set
 * aside, and its `types`, if in error (an unknown type), stood in for by every type, `untyped`: its CEL
 * and pattern are still checked, not what reads a type's fields.
 */
function checkableEntry(schema: z.ZodType, entry: unknown): { readonly entry: unknown; readonly untyped: boolean } | undefined {
  const parsed = schema.safeParse(entry);
  if (parsed.success) return { entry, untyped: false };
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return undefined;
  const copy: Record<string, unknown> = { ...entry };
  let untyped = false;
  for (const issue of parsed.error.issues) {
    const [key] = issue.path;
    if (issue.code === 'unrecognized_keys' && key === undefined) for (const k of issue.keys) delete copy[k];
    else if (typeof key === 'string' && Object.hasOwn(UNCHECKED_FIELDS, key)) copy[key] = UNCHECKED_FIELDS[key];
    else if (key === 'types') {
      copy[key] = INFRA_NODE_TYPES;
      untyped = true;
    } else return undefined;
  }
  return schema.safeParse(copy).success ? { entry: copy, untyped } : undefined;
}

/**
 * The id an entry of a Policy's list claims, where it can be read whatever the entry's other errors, and
 * the field that says it: its `id`, or the one made of the field it names (`naming:<field>`,
 * `required-label:<key>`) when it has none.
 */
function entryId(list: 'naming' | 'requiredLabels' | 'rules', entry: unknown): { readonly id: string; readonly field: string } | undefined {
  if (!isJsonObject(entry)) return undefined;
  const { id } = entry;
  if (id !== undefined) return typeof id === 'string' && RULE_ID_PATTERN.test(id) ? { id, field: 'id' } : undefined;
  if (list === 'rules') return undefined;
  const field = list === 'naming' ? 'field' : 'key';
  const named = (entry as Record<string, unknown>)[field];
  if (typeof named !== 'string' || named === '') return undefined;
  return { id: list === 'naming' ? `naming:${named}` : `required-label:${named}`, field };
}

export interface CelPolicyEngineOptions {
  /** Built-in packs by name, for `include` (default: {@link BUILTIN_PACKS}). */
  readonly packs?: Readonly<Record<string, PolicySpecInput>> | undefined;
  /** Static bounds on CEL expressions. */
  readonly celLimits?: CelLimits | undefined;
  /**
   * How a blocking finding is reported. `error` (default): the goal set does
   * not validate, as `validate` and `check` need. `warning`: the graph still
   * builds and the verdict's gate holds the node, for a command that goes on
   * with the rest of the graph.
   */
  readonly blockingDiagnostic?: 'error' | 'warning' | undefined;
}

/** A policy that includes a pack, and its `blockAt`. */
interface PackJudge {
  readonly policy: string;
  readonly blockAt: Level;
}

/** A pack included by one policy or more (see `CelPolicyEngine.include`). */
interface IncludedPack {
  readonly checks: readonly CompiledCheck[];
  readonly judges: readonly PackJudge[];
}

/**
 * Of the policies that include a pack, the one its findings are judged and
 * reported under: the lowest `blockAt` (a finding that any of them would
 * block, blocks); among equals, the first name in code-point order, never
 * the first file read.
 */
function strictest(judges: readonly PackJudge[]): PackJudge {
  return judges.reduce((a, b) => {
    const c = compareLevels(b.blockAt, a.blockAt);
    return c < 0 || (c === 0 && b.policy < a.policy) ? b : a;
  });
}

/** A check with its level resolved for one environment. */
interface ActiveCheck {
  readonly check: CompiledCheck;
  readonly level: Level;
}

/** Everything that applies to one (environment, type): built once, reused for every node. */
interface TypePlan {
  readonly checks: readonly ActiveCheck[];
  readonly defaults: readonly CompiledDefault[];
}

/** The codes a finding is reported under, and no other diagnostic. */
const FINDING_CODES: ReadonlySet<string> = new Set(['rule-error', 'policy-violation', 'policy-finding']);

/** Result of one check on one node. */
type CheckOutcome =
  | { readonly status: 'pass' }
  | { readonly status: 'fail'; readonly kind: FindingKind; readonly message: string; readonly path: readonly PathKey[] | undefined };

const EMPTY_PLAN: TypePlan = { checks: [], defaults: [] };

/**
 * The policy engine: Policy documents validated once and compiled (patterns,
 * CEL) at load; per environment, the rules indexed by node type, so that a
 * node costs only the rules that can apply to it. One engine serves one
 * compilation: make a new one for each compile.
 */
export class CelPolicyEngine implements PolicyEngine {
  private readonly packs: Readonly<Record<string, PolicySpecInput>>;
  private readonly celLimits: CelLimits | undefined;
  private readonly blockingSeverity: 'error' | 'warning';
  private readonly checks: CompiledCheck[] = [];
  private readonly defaultsList: CompiledDefault[] = [];
  /** The defaults of policies not used (`checkSalvage`): never applied, but a conflict with one is reported. */
  private readonly salvagedDefaults: CompiledDefault[] = [];
  private readonly environmentRefs: EnvironmentReference[] = [];
  /** Each pack included so far: its checks (as they stand in `checks`) and the policies that include it. */
  private readonly includedPacks = new Map<string, IncludedPack>();
  private readonly plans = new Map<string, ReadonlyMap<InfraNodeType, TypePlan>>();
  private readonly goalActivations = new Map<string, CelActivation['goal']>();
  private readonly found: Finding[] = [];
  private readonly evaluated: EvaluatedNode[] = [];
  private goalList: readonly GoalInfo[] = [];

  constructor(options: CelPolicyEngineOptions = {}) {
    this.packs = options.packs ?? BUILTIN_PACKS;
    this.celLimits = options.celLimits;
    this.blockingSeverity = options.blockingDiagnostic ?? 'error';
  }

  /** Validates one Policy document strictly and compiles its rules (and included packs) once. */
  acceptPolicy(doc: RawDocument, diag: DiagnosticBag): void {
    const parsed = policyDocumentSchema().safeParse(doc.value);
    if (!parsed.success) return this.checkUnused(doc, parsed.error.issues, diag);
    const spec = parsed.data.spec;
    const policy = doc.name;
    spec.include.forEach((name, i) => {
      const pack = this.pack(name, doc.locate(['spec', 'include', i]), diag);
      if (pack !== undefined) this.include(name, pack, { policy, blockAt: spec.blockAt }, diag);
    });
    const compiled = compilePolicySpec({
      policy,
      spec,
      at: (path, part) => doc.locate(['spec', ...path], part),
      atIn: doc.locateIn === undefined ? undefined : (path, index) => doc.locateIn!(['spec', ...path], index),
      diag,
      celLimits: this.celLimits,
    });
    this.add(compiled, true, diag);
  }

  checkPolicy(doc: RawDocument, diag: DiagnosticBag): void {
    this.checkUnused(doc, policyDocumentSchema().safeParse(doc.value).error?.issues ?? [], diag);
  }

  /** A Policy not used, its document's `issues` reported, and what validates on its own checked too (`checkSalvage`). */
  private checkUnused(doc: RawDocument, issues: readonly z.core.$ZodIssue[], diag: DiagnosticBag): void {
    reportZodIssues(issues, { schema: policyDocumentSchema(), input: doc.value, prefix: [], owner: 'a Policy', locate: doc.locate, diag });
    this.checkSalvage(doc, meantInput(policyDocumentSchema(), doc.value, issues), diag);
  }

  /**
   * Includes a pack for one more policy. A pack is compiled and evaluated
   * once, however many policies include it, and judged under the strictest
   * of them (`strictest`): a finding blocks when any policy that includes the
   * pack would block it, so that a policy added beside another (by anyone
   * who may add a file to the goals) can make the pack's gate stricter,
   * never weaker, and the outcome does not depend on the order files are read in.
   */
  private include(name: string, pack: PolicySpecInput, judge: PackJudge, diag: DiagnosticBag): void {
    const included = this.includedPacks.get(name);
    if (included === undefined) {
      const packSpec = policySpecSchema().parse({ ...pack, blockAt: judge.blockAt });
      const builtin: SourceLocation = { file: `builtin:${name}`, line: 1, col: 1 };
      const compiled = compilePolicySpec({ policy: judge.policy, spec: packSpec, at: () => builtin, diag, celLimits: this.celLimits });
      this.includedPacks.set(name, { checks: compiled.checks, judges: [judge] });
      this.add(compiled, false, diag);
      return;
    }
    const judges = [...included.judges, judge];
    const before = strictest(included.judges);
    const after = strictest(judges);
    let checks = included.checks;
    if (after.policy !== before.policy || after.blockAt !== before.blockAt) {
      // Re-judged in place: the pack's checks keep their place among the others (and so their findings' order).
      const replaced = new Map(included.checks.map((c) => [c, { ...c, policy: after.policy, blockAt: after.blockAt }]));
      for (const [i, c] of this.checks.entries()) this.checks[i] = replaced.get(c) ?? c;
      checks = [...replaced.values()];
      this.plans.clear();
    }
    this.includedPacks.set(name, { checks, judges });
  }

  /** The built-in pack of this name; an unknown name is an error at `at`. */
  private pack(name: string, at: SourceLocation, diag: DiagnosticBag): PolicySpecInput | undefined {
    const pack = Object.hasOwn(this.packs, name) ? this.packs[name] : undefined;
    if (pack === undefined) {
      const packNames = Object.keys(this.packs);
      diag.error(at, 'unknown-pack', `"${name}" is not a built-in rule pack; packs: ${packNames.join(', ')}${suggestion(name, packNames)}`);
    }
    return pack;
  }

  /**
   * A Policy whose document does not validate is not used, but what does
   * validate on its own is still checked, for its diagnostics only: every
   * problem is reported at once, not a second round once the first is
   * fixed. That is the document as meant (`meant`: a misspelt key read as
   * the field it is near), its pack names, and each entry, with any error
   * only in a field no check reads (`description`, `severity`, `frameworks`,
   * an unknown key) set aside, and with bad `types` checked for all but what
   * reads a type's fields; an entry that cannot be checked still claims
   * its id, so that a second entry of that id is reported too.
   */
  private checkSalvage(doc: RawDocument, meant: MeantInput, diag: DiagnosticBag): void {
    const raw = valueAtPath(meant.value, ['spec']);
    if (!isJsonObject(raw)) return;
    const locate = (path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation => doc.locate(meant.written(['spec', ...path]), part);
    const entries = raw as Readonly<Record<string, unknown>>;
    const shape = policySpecSchema().shape;
    const include = shape.include.safeParse(entries['include']);
    if (include.success) include.data.forEach((name, i) => this.pack(name, locate(['include', i]), diag));
    const salvaged: Record<string, unknown[]> = {};
    const unchecked: UncheckedEntry[] = [];
    /** The entries whose `types` are stood in for, as `list:index`. */
    const untyped = new Set<string>();
    for (const key of ['naming', 'requiredLabels', 'rules', 'defaults'] as const) {
      const list = entries[key];
      if (!Array.isArray(list)) continue;
      const entry = shape[key].unwrap().element;
      // Entries that cannot be checked are left as holes, so that the others keep their index (and place).
      salvaged[key] = list.map((e, i) => {
        const checkable = checkableEntry(entry, e);
        if (checkable?.untyped === true) untyped.add(`${key}:${i}`);
        return checkable?.entry;
      });
      if (key === 'defaults') continue;
      let kept = 0;
      salvaged[key].forEach((e, i) => {
        if (e !== undefined) kept++;
        else {
          const claim = entryId(key, list[i]);
          if (claim !== undefined) unchecked.push({ list: key, before: kept, id: claim.id, location: locate([key, i, claim.field]) });
        }
      });
    }
    const kept = Object.fromEntries(Object.entries(salvaged).map(([k, list]) => [k, list.filter((e) => e !== undefined)]));
    const spec = policySpecSchema().safeParse(kept);
    if (!spec.success) return;
    // Indexes in `spec` count only the entries kept: map them back to the document's.
    const original = (path: readonly PathKey[]): readonly PathKey[] => {
      const [key, i, ...rest] = path;
      const list = typeof key === 'string' ? salvaged[key] : undefined;
      if (list === undefined || typeof i !== 'number') return path;
      let seen = -1;
      const at = list.findIndex((e) => e !== undefined && ++seen === i);
      return [key!, at, ...rest];
    };
    const compiled = compilePolicySpec({
      policy: doc.name,
      spec: spec.data,
      at: (path, part) => locate(original(path), part),
      atIn: doc.locateIn === undefined ? undefined : (path, index) => doc.locateIn!(meant.written(['spec', ...original(path)]), index),
      diag,
      celLimits: this.celLimits,
      unchecked,
      untyped: (path) => untyped.has(original(path).join(':')),
    });
    for (const d of compiled.defaults) if (!this.conflicts(d, diag)) this.salvagedDefaults.push(d);
  }

  private add(compiled: ReturnType<typeof compilePolicySpec>, user: boolean, diag: DiagnosticBag): void {
    this.checks.push(...compiled.checks);
    for (const d of compiled.defaults) {
      // A conflicting default is reported and left out, so that nothing depends on the order files are read in.
      if (!this.conflicts(d, diag)) this.defaultsList.push(d);
    }
    if (user) this.environmentRefs.push(...compiled.environments);
    this.plans.clear();
  }

  /**
   * Two defaults that would both set one field of one type in one
   * environment, to different values, at the same specificity (both for
   * every environment, or both for listed environments that overlap): an
   * error at the later one. A default for listed environments and one for
   * every environment do not conflict: the listed one wins where it applies.
   * Those of a policy not used count too, so that the conflict is reported
   * whichever of the two files is read first.
   */
  private conflicts(d: CompiledDefault, diag: DiagnosticBag): boolean {
    let found = false;
    for (const e of [...this.defaultsList, ...this.salvagedDefaults]) {
      if ((d.environments === undefined) !== (e.environments === undefined)) continue;
      if (d.environments !== undefined && e.environments !== undefined && ![...d.environments].some((env) => e.environments!.has(env))) continue;
      const types = [...d.types].filter((t) => e.types.has(t));
      if (types.length === 0) continue;
      for (const [field, value] of d.set) {
        const other = e.set.find(([f]) => f === field);
        if (other === undefined || isDeepStrictEqual(other[1], value)) continue;
        const here = d.locations.get(field)!;
        const there = e.locations.get(field)!;
        const envs = d.environments === undefined ? 'every environment' : `environment ${[...d.environments].filter((env) => e.environments!.has(env)).join(', ')}`;
        diag.error(
          here,
          'conflicting-default',
          `policy ${d.policy} defaults ${field} of ${types.join(', ')} to ${JSON.stringify(value)}, but policy ${e.policy} (${there.file}:${there.line}:${there.col}) defaults it to ${JSON.stringify(other[1])} in ${envs}; keep one, or scope them to different environments`,
        );
        found = true;
      }
    }
    return found;
  }

  /** Indexes the rules for every environment of the goal set; warns about environment names that look misspelt. */
  prepare(goals: readonly GoalInfo[], diag: DiagnosticBag): void {
    this.goalList = goals;
    const environments = [...new Set(goals.map((g) => g.environment))];
    for (const env of environments) this.planFor(env);
    warnUnmatchedProduction(goals, new Map([...this.includedPacks.keys()].map((name) => [name, this.packs[name]!])), diag);
    if (environments.length === 0) return;
    for (const ref of this.environmentRefs) {
      if (environments.includes(ref.name)) continue;
      const near = didYouMean(ref.name, environments);
      if (near !== undefined) {
        diag.warning(ref.location, 'unknown-environment', `no goal has environment "${ref.name}" (did you mean "${near}"?)`);
      }
    }
  }

  /** The defaults for the fields `decl`'s goal leaves unset: for each, the one of its environment if any, else the one for every environment. */
  defaultsFor(decl: NodeDeclaration, type: InfraNodeType): readonly AppliedDefault[] {
    const plan = this.planFor(decl.goal.environment).get(type);
    if (plan === undefined || plan.defaults.length === 0) return NO_DEFAULTS;
    const applied: AppliedDefault[] = [];
    for (const d of plan.defaults) {
      for (const [field, value] of d.set) {
        // What the user wrote: a field left unset, not one set to its schema's default.
        if (Object.hasOwn(decl.spec, field) || applied.some((a) => a.field === field)) continue;
        applied.push({ field, value, policy: d.policy, location: d.locations.get(field)! });
      }
    }
    return applied;
  }

  /** Runs every check that applies to the node (its spec with the defaults in place). */
  evaluate(decl: NodeDeclaration, spec: InfraNodeSpec, diag: DiagnosticBag, options: { readonly runtimeFields?: ReadonlySet<string> | undefined } = {}): PolicyVerdict {
    const runtimeFields = options.runtimeFields ?? NO_FIELDS;
    const environment = decl.goal.environment;
    this.evaluated.push({ id: decl.id, type: spec.type, goal: decl.goal.name, environment, location: decl.source });
    const plan = this.planFor(environment).get(spec.type) ?? EMPTY_PLAN;

    let activation: CelActivation | undefined;
    const activationFor = (): CelActivation => (activation ??= new NodeActivation(decl, spec, this.goalActivation(decl.goal)));

    const blocking: Finding[] = [];
    for (const { check, level } of plan.checks) {
      const outcome = runCheck(check, spec, decl, activationFor, runtimeFields);
      if (outcome.status === 'pass') continue;
      const finding: Finding = {
        policy: check.policy,
        rule: check.id,
        kind: outcome.kind,
        severity: level,
        blocking: compareLevels(level, check.blockAt) >= 0,
        message: outcome.message,
        description: check.description,
        frameworks: check.frameworks,
        node: decl.id,
        type: spec.type,
        goal: decl.goal.name,
        environment,
        location: outcome.path === undefined ? decl.source : decl.locate(outcome.path),
      };
      this.found.push(finding);
      this.report(finding, diag);
      if (finding.blocking) blocking.push(finding);
    }

    let gate: NodeGate | undefined;
    if (blocking.length > 0) {
      gate = {
        reason: blocking.map((f) => `${f.rule} (${f.severity}, ${f.policy})`).join(', '),
        findings: blocking.map((f) => ({ rule: f.rule, severity: f.severity, policy: f.policy, message: f.message, location: f.location })),
      };
    }
    return { gate };
  }

  private report(f: Finding, diag: DiagnosticBag): void {
    const code = f.kind === 'rule-error' ? 'rule-error' : f.blocking ? 'policy-violation' : 'policy-finding';
    const severity = f.blocking ? this.blockingSeverity : f.severity === 'info' ? 'info' : 'warning';
    diag.add(f.location, severity, code, findingText(f));
  }

  /** Every finding of this compilation, in evaluation order. */
  findings(): readonly Finding[] {
    return this.found;
  }

  /** Every node the engine judged (those whose spec was valid), for reports. */
  nodes(): readonly EvaluatedNode[] {
    return this.evaluated;
  }

  /** The goals of the goal set, as given to `prepare`. */
  goals(): readonly GoalInfo[] {
    return this.goalList;
  }

  /** The rules in force (user rules and included packs), for SARIF's rule list. */
  rules(): readonly RuleInfo[] {
    return this.checks.map((c) => ({ id: c.id, policy: c.policy, kind: c.body.kind, description: c.description, frameworks: c.frameworks }));
  }

  /**
   * The `check` report: verdicts per node and goal, grouped by framework, and those of the compile's
   * `diagnostics` that are no finding (the findings' own are in the report already).
   */
  checkReport(diagnostics: readonly Diagnostic[] = []): CheckReport {
    const others = diagnostics.filter((d) => !FINDING_CODES.has(d.code));
    return checkReport(this.found, { nodes: this.evaluated, goals: this.goalList, rules: this.rules(), diagnostics: others });
  }

  private goalActivation(goal: GoalInfo): CelActivation['goal'] {
    let a = this.goalActivations.get(goal.name);
    if (a === undefined) {
      a = toCelValue({ name: goal.name, environment: goal.environment, labels: goal.labels });
      this.goalActivations.set(goal.name, a);
    }
    return a;
  }

  private planFor(environment: string): ReadonlyMap<InfraNodeType, TypePlan> {
    let plan = this.plans.get(environment);
    if (plan !== undefined) return plan;
    const byType = new Map<InfraNodeType, TypePlan>();
    for (const t of INFRA_NODE_TYPES) {
      const checks: ActiveCheck[] = [];
      for (const check of this.checks) {
        if (check.types !== undefined && !check.types.has(t)) continue;
        const level = levelFor(check.severity, environment);
        if (level === 'none') continue;
        checks.push({ check, level });
      }
      // Defaults for listed environments first: where one applies, it wins over a default for every environment.
      const defaults = this.defaultsList
        .filter((d) => d.types.has(t) && (d.environments === undefined || d.environments.has(environment)))
        .sort((a, b) => Number(a.environments === undefined) - Number(b.environments === undefined));
      if (checks.length > 0 || defaults.length > 0) byType.set(t, { checks, defaults });
    }
    plan = byType;
    this.plans.set(environment, plan);
    return plan;
  }
}

/**
 * What CEL sees for one node. Each variable is converted on first use only:
 * most rules read one or two of them.
 */
class NodeActivation implements CelActivation {
  readonly id: string;
  readonly type: string;
  readonly goal: CelActivation['goal'];
  readonly deletionPolicy: string;
  private readonly rawSpec: InfraNodeSpec;
  private readonly rawLabels: Readonly<Record<string, string>>;
  private convertedSpec: CelActivation['spec'] | undefined;
  private convertedLabels: CelActivation['labels'] | undefined;

  constructor(decl: NodeDeclaration, spec: InfraNodeSpec, goal: CelActivation['goal']) {
    this.id = decl.id;
    this.type = spec.type;
    this.goal = goal;
    this.deletionPolicy = decl.deletionPolicy ?? 'Orphan';
    this.rawSpec = spec;
    this.rawLabels = decl.labels;
  }

  get spec(): CelActivation['spec'] {
    return (this.convertedSpec ??= toCelValue(this.rawSpec));
  }

  get labels(): CelActivation['labels'] {
    return (this.convertedLabels ??= toCelValue(this.rawLabels));
  }
}

const NO_FIELDS: ReadonlySet<string> = new Set();
const NO_DEFAULTS: readonly AppliedDefault[] = [];

/**
 * Runs one check. A finding's message is shown, logged and stored: what in it quotes the spec (a
 * rule's evaluation error quotes the value it failed on) is masked as `plan` masks the spec.
 */
function runCheck(check: CompiledCheck, spec: InfraNodeSpec, decl: NodeDeclaration, activation: () => CelActivation, runtimeFields: ReadonlySet<string>): CheckOutcome {
  const outcome = judge(check, spec, decl, activation, runtimeFields);
  return outcome.status === 'pass' ? outcome : { ...outcome, message: maskShownSecrets(spec, outcome.message) };
}

function judge(check: CompiledCheck, spec: InfraNodeSpec, decl: NodeDeclaration, activation: () => CelActivation, runtimeFields: ReadonlySet<string>): CheckOutcome {
  const body = check.body;
  switch (body.kind) {
    case 'naming': {
      if (runtimeFields.has(body.field)) return atRunTime('the naming pattern', body.field);
      const value = (spec as Readonly<Record<string, unknown>>)[body.field];
      // Nothing to name: an optional field left unset.
      if (value === undefined || value === null) return { status: 'pass' };
      const text = typeof value === 'string' ? value : String(value);
      if (text.length > MAX_MATCHED_LENGTH) {
        return { status: 'fail', kind: 'naming', message: `${formatPath(['spec', body.field])} is longer than ${MAX_MATCHED_LENGTH} characters`, path: ['spec', body.field] };
      }
      const m = matcher(body.pattern, 'the naming pattern', 'naming', decl);
      if (m.status === 'fail') return m;
      if (m.regex.test(text)) return { status: 'pass' };
      // The value as `plan` shows it: a secret in a file's text is masked.
      const shown = shownSpec(spec)[body.field];
      return { status: 'fail', kind: 'naming', message: `${formatPath(['spec', body.field])} "${typeof shown === 'string' ? shown : text}" does not match ${m.regex.source}`, path: ['spec', body.field] };
    }
    case 'required-label': {
      const value = ownValue(decl.labels, body.key);
      if (value === undefined) return { status: 'fail', kind: 'required-label', message: `label "${body.key}" is missing`, path: ['labels'] };
      // `team: ""` names no team: a label required is one with a value.
      if (value.trim() === '') return { status: 'fail', kind: 'required-label', message: `label "${body.key}" is empty`, path: ['labels', body.key] };
      if (body.pattern === undefined) return { status: 'pass' };
      const m = matcher(body.pattern, `the pattern of label "${body.key}"`, 'required-label', decl);
      if (m.status === 'fail') return m;
      if (m.regex.test(value)) return { status: 'pass' };
      return { status: 'fail', kind: 'required-label', message: `label "${body.key}" is "${value}", which does not match ${m.regex.source}`, path: ['labels', body.key] };
    }
    case 'rule': {
      if (body.when !== undefined) {
        const unknown = runtimeFieldRead(body.when, runtimeFields);
        if (unknown !== undefined) return atRunTime('when', unknown);
        const w = body.when.run(activation());
        if (w.status === 'error') return ruleError('when', body.when, body.at.when, w.message);
        if (!w.value) return { status: 'pass' };
      }
      const unknown = runtimeFieldRead(body.require, runtimeFields);
      if (unknown !== undefined) return atRunTime('require', unknown);
      const r = body.require.run(activation());
      if (r.status === 'error') return ruleError('require', body.require, body.at.require, r.message);
      if (r.value) return { status: 'pass' };
      return { status: 'fail', kind: 'rule', message: `${check.description} (require: ${body.require.source})`, path: body.require.focus };
    }
    default:
      return assertNever(body, 'check');
  }
}

/** `pattern`'s regex with this node's environment and labels in it, or the finding of a node it cannot be built for. */
function matcher(pattern: NamePattern, what: string, kind: FindingKind, decl: NodeDeclaration): { readonly status: 'ok'; readonly regex: LinearRegex } | Extract<CheckOutcome, { status: 'fail' }> {
  const m = pattern.matcherFor(decl.goal.environment, decl.labels);
  if (m.status === 'missing-label') return { status: 'fail', kind, message: `${what} ${pattern.source} needs label "${m.key}", which the node does not carry`, path: ['labels'] };
  if (m.status === 'unusable') return { status: 'fail', kind, message: `${what} ${m.message}`, path: ['labels'] };
  return m;
}

/** The first field of `runtimeFields` that `program` reads, if any (every one, if it reads the whole spec). */
function runtimeFieldRead(program: CelProgram, runtimeFields: ReadonlySet<string>): string | undefined {
  if (runtimeFields.size === 0) return undefined;
  if (program.readsWholeSpec) return [...runtimeFields][0];
  return program.specFields.find((f) => runtimeFields.has(f.name))?.name;
}

/**
 * A check that reads a field whose value a reference gives only at run
 * time cannot be evaluated now: judging the reference's text would let
 * anything through (`"${…}" != 'none'` holds). It fails closed, as a rule
 * that cannot be evaluated does.
 */
function atRunTime(what: string, field: string): CheckOutcome {
  const path = ['spec', field];
  return { status: 'fail', kind: 'rule-error', message: `${what} cannot be evaluated: ${formatPath(path)} is set by a reference, known only at run time; the rule counts as broken`, path };
}

/**
 * A rule that cannot be evaluated fails closed: it counts as broken, at its
 * own level. The finding is at the node; the message says where the
 * expression is written.
 */
function ruleError(field: 'when' | 'require', program: CelProgram, at: SourceLocation, message: string): CheckOutcome {
  const where = formatLocation(at);
  return { status: 'fail', kind: 'rule-error', message: `${field} (${where}) could not be evaluated (${message}); the rule counts as broken`, path: program.focus };
}
