import { z } from 'zod';
import { article, DiagnosticBag, fieldPathProblem, fieldSchema, formatLocation, formatPath, hasReferences, isJsonObject, literalExpressions, meantInput, MISSING_RESOURCE, once, pendingIssue, reportZodIssues, suggestion, valueAtPath, warnNotInterpolated } from '../runtime/index.ts';
import type { BuiltNode, BuiltSpec, GoalInfo, ImpliedEdge, NodeDeclaration, NodeSpecFactory, PathKey, PendingValue, RawDocument, SourceLocation } from '../runtime/index.ts';
import type { BackendFactory, NodeConflict, SpecIssue } from './backend.ts';
import { desiredNodeSpec, sameSpecKey } from './desired.ts';
import type { InfraDesiredNodeSpec } from './desired.ts';
import type { AppliedDefault, PolicyDefault, PolicyEngine } from './policy.ts';
import type { BackendDeclaration, BackendRegistry } from './registry.ts';
import { wantsString } from './resolved-spec.ts';
import { referencedSecretPaths } from './secret.ts';
import { identityFields, INFRA_NODE_TYPES, isInfraNodeType, secretFields, specSchemas, statefulTypes } from './spec.ts';
import type { InfraNodeSpec, InfraNodeType } from './spec.ts';

export const backendDocumentSchema = z.strictObject({
  apiVersion: z.string(),
  kind: z.literal('Backend').describe('The document kind: Goal, Backend or Policy.'),
  metadata: z
    .strictObject({
      name: z.string().describe('The backendId nodes name in their backend field (and spec.defaults.backend).'),
      labels: z.record(z.string(), z.string()).optional().describe('Free-form labels of the backend.'),
    })
    .describe('The backend\'s name.'),
  spec: z.strictObject({
    type: z.string().describe('Which implementation: local, memory, postgres, exec, ansible, script.'),
    config: z.record(z.string(), z.unknown()).default({}).describe('Validated by the implementation.'),
  }),
});

/** A Backend's `spec.type` and `spec.config` alone, other keys let through: what its implementation checks. */
const backendCoreSchema = once(() => z.object({ type: backendDocumentSchema.shape.spec.shape.type, config: backendDocumentSchema.shape.spec.shape.config }));

/** The backend a goal set gets when it declares none named `local`. */
export const DEFAULT_LOCAL_BACKEND = { id: 'local', type: 'local', config: { root: '.desiredstate/local' } } as const;

/**
 * Why an `ignoreFields` entry matches no drift a node of this type, with
 * this `spec`, can have, or undefined. Entries are paths inside the node's
 * `spec`, as drift reports print them (`mode`, `input.retentionDays`).
 */
function ignoreFieldProblem(schema: (typeof specSchemas)[keyof typeof specSchemas], field: string, type: string, spec: unknown): string | undefined {
  // A deletion out of band is always reported: `selfHeal: false` is how a goal says "report, do not re-create".
  if (field === MISSING_RESOURCE.path) {
    return `"${MISSING_RESOURCE.path}" (a resource deleted out of band) cannot be ignored: it is always reported; selfHeal: false reports it without re-creating the resource`;
  }
  const problem = fieldPathProblem(schema, field, type, spec);
  if (problem === undefined) return undefined;
  // `spec.mode` for `mode`: said plainly, as edit distance cannot see it.
  const inner = field.startsWith('spec.') ? field.slice('spec.'.length) : undefined;
  if (inner !== undefined && fieldPathProblem(schema, inner, type, spec) === undefined) {
    return `"${field}" is not a field of ${type}: paths are relative to the node's spec (did you mean "${inner}"?)`;
  }
  return problem;
}

/**
 * A spec whose only issues are at strings compile cannot know (`issues`, at
 * `${nodes…}` references): a template. Each top-level field holding one is
 * kept as written (the reference in place, for the dispatcher to resolve
 * and check against the whole schema, refinements included); every other
 * field is parsed, its default in place. Undefined if it still fails.
 */
function parseTemplate(
  schema: (typeof specSchemas)[keyof typeof specSchemas],
  input: Record<string, unknown>,
  issues: readonly z.core.$ZodIssue[],
): { data: Record<string, unknown>; asWritten: ReadonlySet<string> } | undefined {
  const asWritten = new Set(issues.map((i) => String(i.path[0])));
  // A fresh object of the same shape, in the same key order: the spec's refinements would read the reference as a value.
  const template = z.strictObject({ ...schema.shape, ...Object.fromEntries([...asWritten].map((k) => [k, z.unknown()])) }).safeParse(input);
  return template.success ? { data: template.data, asWritten } : undefined;
}

/**
 * A spec with errors as its backend's checks read it (`BackendFactory.specFields`):
 * `type` and those fields, each parsed on its own (one holding a reference kept as
 * written). Undefined when one of them has an error, or the spec as a whole has one
 * (it is not an object, or a rule across fields fails); an unknown key does not count.
 */
function checkableSpec(
  type: InfraNodeType,
  schema: (typeof specSchemas)[keyof typeof specSchemas],
  input: Record<string, unknown>,
  issues: readonly z.core.$ZodIssue[],
  fields: readonly string[],
): InfraNodeSpec | undefined {
  const invalid = new Set<PropertyKey>();
  for (const issue of issues) {
    const [field] = issue.path;
    if (field !== undefined) invalid.add(field);
    else if (issue.code !== 'unrecognized_keys') return undefined;
  }
  if (fields.some((f) => invalid.has(f))) return undefined;
  const shape: Readonly<Record<string, z.ZodType>> = schema.shape;
  const spec: Record<string, unknown> = { type };
  for (const field of fields) {
    const parsed = shape[field]?.safeParse(input[field]);
    const value = parsed?.success === true ? parsed.data : input[field];
    if (value !== undefined) spec[field] = value;
  }
  // Partial: but its backend reads no other field (the declaration's own test holds it to that).
  return spec as InfraNodeSpec;
}

/**
 * The top-level fields holding a whole `${nodes…}` reference where the
 * type takes more than text (`input`, `extraVars`, `vars`): the schema
 * accepts the reference's text there, but the dispatcher puts in the
 * output's own value (`true`, not `"true"`), so the template says nothing
 * of what a rule would see. Found as the dispatcher finds text fields: a
 * number in the reference's place is refused as "not a string" only where
 * the type wants text. Whether a place wants text depends on the type and
 * the path only, so `known` keeps each answer: one probe per type and path,
 * not a copy and a parse of every node's spec (100k nodes, a sixth of them
 * with a whole reference: ~0.5 s of the compile).
 */
function typedReferenceFields(
  type: string,
  schema: (typeof specSchemas)[keyof typeof specSchemas],
  input: Record<string, unknown>,
  pending: readonly PendingValue[] | undefined,
  known: Map<string, boolean>,
): string[] {
  const whole = pending?.filter((p) => p.type === 'any') ?? [];
  if (whole.length === 0) return [];
  const keyOf = (path: readonly PathKey[]): string => `${type}\0${JSON.stringify(path)}`;
  if (whole.some((p) => !known.has(keyOf(p.path)))) {
    const probe = structuredClone(input);
    for (const { path } of whole) (valueAtPath(probe, path.slice(0, -1)) as Record<PathKey, unknown>)[path.at(-1)!] = 0;
    const parsed = schema.safeParse(probe);
    const text = new Set(parsed.success ? [] : parsed.error.issues.filter(wantsString).map((i) => JSON.stringify(i.path)));
    for (const { path } of whole) known.set(keyOf(path), text.has(JSON.stringify(path)));
  }
  return whole.filter((p) => known.get(keyOf(p.path)) !== true).map((p) => String(p.path[0]));
}

/**
 * A `${` in a Backend's config, which its backend reads as written (`root: out-${goal.name}` would make
 * a directory of that name): a warning at each string that holds one, but one the config's own check
 * refuses (`issues`), which says enough. (No config takes a free-form map: a key is an unknown field.)
 */
function warnConfigNotInterpolated(config: Readonly<Record<string, unknown>>, issues: readonly z.core.$ZodIssue[], locate: RawDocument['locate'], diag: DiagnosticBag): void {
  const refused = issues.flatMap((i) => (i.code === 'unrecognized_keys' ? i.keys.map((k) => [...i.path, k]) : [i.path]));
  for (const l of literalExpressions(config)) {
    if (refused.some((r) => r.length <= l.path.length && r.every((k, i) => k === l.path[i]))) continue;
    warnNotInterpolated(l.text, "a Backend's config", locate(['spec', 'config', ...l.path]), diag);
  }
}

/**
 * What a Backend document declared under its name: a backend to build, or
 * one declared with errors (already reported), with its type where it is
 * known: a node naming a broken one is not also told that it is not
 * configured, and is checked as far as the type and what can be read of
 * the config allow (it is built, but a goal set with errors changes nothing).
 */
type DeclaredBackend =
  | { readonly status: 'ok'; readonly decl: BackendDeclaration }
  | {
      readonly status: 'broken';
      readonly type: string | undefined;
      /** What of its config its nodes' checks may use (see `configForChecks`); absent when they cannot run. */
      readonly forChecks?: { readonly config: unknown } | undefined;
    };

/**
 * What of a Backend's config with errors (a map, with its `issues`;
 * undefined where the config is not even a map: a list, say, whose error
 * is the one said of it) its nodes' checks may still use, so that an
 * error in a field they do not read hides none of theirs: the config as
 * meant (a misspelt key read as the field it is near, `meantInput`) where
 * that is valid; else the fields the checks read (`configFields`), each
 * parsed on its own, where none of them has an error or is absent where an
 * unknown key may stand for it. Undefined when they cannot run without a
 * guess at the config, which could make up errors.
 */
function configForChecks(
  factory: BackendFactory,
  config: { readonly value: Readonly<Record<string, unknown>>; readonly issues: readonly z.core.$ZodIssue[] } | undefined,
): { readonly config: unknown } | undefined {
  const fields = factory.configFields;
  if (fields?.length === 0) return { config: {} };
  if (config === undefined) return undefined;
  const meant = meantInput(factory.configSchema, config.value, config.issues);
  const again = factory.configSchema.safeParse(meant.value);
  if (again.success && !meant.unsure) return { config: again.data };
  if (fields === undefined || !isJsonObject(meant.value)) return undefined;
  const invalid = new Set<PropertyKey>();
  for (const issue of again.success ? [] : again.error.issues) {
    const [field] = issue.path;
    // A rule across fields: which of them it is about, only its message says.
    if (field === undefined) return undefined;
    invalid.add(field);
  }
  const value = meant.value;
  const partial: Record<string, unknown> = {};
  for (const field of fields) {
    if (invalid.has(field) || meant.unsureAt([field])) return undefined;
    const schema = fieldSchema(factory.configSchema, field) as z.ZodType | undefined;
    const parsed = schema?.safeParse(value[field]);
    if (parsed?.success !== true) return undefined;
    if (parsed.data !== undefined) partial[field] = parsed.data;
  }
  return { config: partial };
}

/** The policy defaults a node's spec was validated with, and the spec without them where that is valid (for the backend's checks). */
interface SpecDefaults {
  readonly applied: readonly AppliedDefault[];
  readonly withoutThem: () => InfraNodeSpec | undefined;
}

const NO_DEFAULTS: SpecDefaults = { applied: [], withoutThem: () => undefined };

/**
 * The issues of a node's spec as its goal writes it that its schema does not see, as that judges the
 * spec once resolved too (a `$${` there is a `${`): a `${nodes…}` reference in the path of a secret
 * reference (`referencedSecretPaths`). Policy defaults hold no `${`, so the spec without them has them all.
 */
function writtenOnlyIssues(spec: unknown): z.core.$ZodIssue[] {
  return referencedSecretPaths(spec).map(({ path, message }) => ({ code: 'custom', path, message, input: valueAtPath(spec, path) }));
}

/** The node's spec as its goal writes it, without policy defaults, parsed; undefined when it is not valid so. */
function specWithout(decl: NodeDeclaration, schema: (typeof specSchemas)[keyof typeof specSchemas]): InfraNodeSpec | undefined {
  const parsed = schema.safeParse(decl.spec);
  return parsed.success ? ({ type: decl.type, ...parsed.data } as InfraNodeSpec) : undefined;
}

/**
 * What an error owes to policy defaults, said after its message: the
 * default of the field it is at, or all of them where it is at another
 * field (a rule across fields), each with where its policy sets it.
 */
function defaultsNote(decl: NodeDeclaration, applied: readonly AppliedDefault[], field: PropertyKey | undefined): string {
  const own = applied.filter((d) => d.field === field);
  const named = own.length > 0 ? own : applied;
  return ` (with policy defaults on node "${decl.id}": ${named.map((d) => `${formatPath(['spec', d.field])} from policy ${d.policy} at ${formatLocation(d.location)}`).join(', ')})`;
}

/**
 * Issues found with a node's policy defaults in place (`applied`), grouped by what is said after their
 * message: nothing for those the spec as the goal writes it has too (`written`: its issues, found
 * alike; asked only where there are defaults and issues), else the defaults that bring them about
 * (`defaultsNote`).
 */
function byDefaultsNote<I extends { readonly code?: string | undefined; readonly path: readonly PropertyKey[]; readonly message: string }>(
  decl: NodeDeclaration,
  applied: readonly AppliedDefault[],
  issues: readonly I[],
  written: () => readonly I[],
): ReadonlyMap<string, readonly I[]> {
  if (applied.length === 0 || issues.length === 0) return new Map([['', issues]]);
  const key = (i: I): string => JSON.stringify([i.code, i.path, i.message]);
  const own = new Set(written().map(key));
  return Map.groupBy(issues, (i) => (own.has(key(i)) ? '' : defaultsNote(decl, applied, i.path[0])));
}

/**
 * Reports the issues of a node's spec validated with its policy defaults
 * (`applied`) in place, at their place in the goal: those the spec as
 * written has too as they are, the others (which a default brings about)
 * naming the defaults (`defaultsNote`).
 */
function reportSpecIssues(
  decl: NodeDeclaration,
  schema: (typeof specSchemas)[keyof typeof specSchemas],
  input: Record<string, unknown>,
  issues: readonly z.core.$ZodIssue[],
  applied: readonly AppliedDefault[],
  diag: DiagnosticBag,
): void {
  const options = { schema, input, prefix: ['spec'], owner: decl.type, locate: decl.locate } as const;
  const written = (): readonly z.core.$ZodIssue[] => {
    const parsed = schema.safeParse(decl.spec);
    return [...(parsed.success ? [] : parsed.error.issues), ...writtenOnlyIssues(decl.spec)];
  };
  for (const [note, group] of byDefaultsNote(decl, applied, issues, written)) {
    if (note === '') reportZodIssues(group, { ...options, diag });
    else {
      const bag = new DiagnosticBag();
      reportZodIssues(group, { ...options, diag: bag });
      for (const d of bag.items) diag.add(d, d.severity, d.code, `${d.message}${note}`);
    }
  }
}

/** A node that cannot be made as the goals have it (`NodeConflict`): an error at the node, naming where the other one is. */
function conflict(c: NodeConflict, byId: ReadonlyMap<string, BuiltNode<InfraDesiredNodeSpec>>, diag: DiagnosticBag): void {
  const node = byId.get(c.node);
  const other = c.other === undefined ? undefined : byId.get(c.other);
  if (node === undefined) return;
  const at = other === undefined ? '' : ` (node "${other.id}": ${formatLocation(other.locate(['spec', ...c.path]))})`;
  diag.error(node.locate(['spec', ...c.path]), c.code, `node "${c.node}": ${c.message}${at}`);
}

/** Node fields that policies read (with the spec): a policy finding on a node where one is invalid would be an echo. */
const POLICY_INPUTS = ['id', 'labels', 'deletionPolicy', 'goal.name', 'goal.environment', 'goal.labels'];

/**
 * The infra domain's half of goal compilation: typed, strict specs for each
 * node; Backend documents validated against their implementation; Policy
 * documents handed to the policy engine.
 */
export class InfraSpecFactory implements NodeSpecFactory<InfraDesiredNodeSpec> {
  readonly documentKinds = ['Backend', 'Policy'] as const;
  readonly nodeTypes = INFRA_NODE_TYPES;
  /** Every backend name declared, well or not, in declaration order (the default `local` last). */
  private readonly declared = new Map<string, DeclaredBackend>();
  readonly policies: RawDocument[] = [];
  /** Policy-set defaults per node, for plans. */
  readonly policyDefaults = new Map<string, readonly PolicyDefault[]>();
  private readonly registry: BackendRegistry;
  private readonly policy: PolicyEngine | undefined;
  /** Per backend id and resource key, the node that manages it first (see `BackendFactory.resourceKey`). */
  private readonly claims = new Map<string, { readonly id: string; readonly source: SourceLocation }>();
  /** Per backend type and place, the node and backend that manage it first (see `BackendFactory.placeOf`). */
  private readonly places = new Map<string, { readonly id: string; readonly backend: string; readonly source: SourceLocation }>();
  /** Where relative backend places resolve from (the working directory); without it, places are not compared. */
  private readonly cwd: string | undefined;
  /** Per backend id, `BackendRegistry.identityKey` of its declaration, worked out once for all its nodes. */
  private readonly identityKeys = new Map<string, string>();
  /** Per type and path, whether a whole reference there is read as text (see `typedReferenceFields`). */
  private readonly textPlaces = new Map<string, boolean>();

  constructor(options: { registry: BackendRegistry; policy?: PolicyEngine | undefined; cwd?: string | undefined }) {
    this.registry = options.registry;
    this.policy = options.policy;
    this.cwd = options.cwd;
  }

  /** The backends declared without errors (and the default `local`), by id, in declaration order: what is instantiated. */
  get backends(): ReadonlyMap<string, BackendDeclaration> {
    const out = new Map<string, BackendDeclaration>();
    for (const [id, d] of this.declared) if (d.status === 'ok') out.set(id, d.decl);
    return out;
  }

  private broken(name: string, type: string | undefined, forChecks?: { readonly config: unknown }): void {
    this.declared.set(name, { status: 'broken', type, forChecks: type === undefined ? undefined : forChecks });
  }

  /**
   * The backend `id` as its nodes' checks see it: its declaration, or, for a
   * Backend declared with errors, its type and what its nodes' checks may
   * use of its config (see `configForChecks`); undefined when they cannot run.
   */
  private checkedBackend(id: string, declared: DeclaredBackend | undefined): BackendDeclaration | undefined {
    if (declared?.status === 'ok') return declared.decl;
    if (declared?.type === undefined || declared.forChecks === undefined) return undefined;
    return { id, type: declared.type, config: declared.forChecks.config };
  }

  /** `InfraDesiredNodeSpec.backendKey` of a backend's nodes: its identity, where the working directory is known (undefined: its name). */
  private backendKey(declared: DeclaredBackend | undefined): string | undefined {
    if (declared?.status !== 'ok' || this.cwd === undefined) return undefined;
    let key = this.identityKeys.get(declared.decl.id);
    if (key === undefined) this.identityKeys.set(declared.decl.id, (key = this.registry.identityKey(declared.decl, this.cwd)));
    return key;
  }

  /** A backend id that no Backend document declares, with the nearest configured one. */
  private notConfigured(id: string, source: SourceLocation, diag: DiagnosticBag): void {
    diag.error(source, 'unknown-backend', `backend "${id}" is not configured${suggestion(id, this.backends.keys())}`);
  }

  acceptDocument(doc: RawDocument, diag: DiagnosticBag): void {
    this.read(doc, diag, true);
  }

  checkUnused(doc: RawDocument, diag: DiagnosticBag): void {
    this.read(doc, diag, false);
  }

  /** A Backend or Policy document checked, its problems in `diag`, and kept (declared, or its rules used) where `use`. */
  private read(doc: RawDocument, diag: DiagnosticBag, use: boolean): void {
    if (doc.kind === 'Policy') {
      if (!use) return this.policy?.checkPolicy(doc, diag);
      this.policies.push(doc);
      this.policy?.acceptPolicy(doc, diag);
      return;
    }
    const parsed = backendDocumentSchema.safeParse(doc.value);
    if (!parsed.success) {
      reportZodIssues(parsed.error.issues, { schema: backendDocumentSchema, input: doc.value, prefix: [], owner: 'a Backend', locate: doc.locate, diag });
      // The rest as meant: a misspelt key (reported above) read as the field it is near.
      const meant = meantInput(backendDocumentSchema, doc.value, parsed.error.issues);
      const locate: RawDocument['locate'] = (path, part) => doc.locate(meant.written(path), part);
      const spec = valueAtPath(meant.value, ['spec']);
      const type = valueAtPath(spec, ['type']);
      const factory = typeof type === 'string' ? this.registry.get(type) : undefined;
      // Every problem at once: a valid type and config are still checked by their implementation, so an
      // unknown key beside them (or a bad name) does not hide a config error until it is fixed; nor, where
      // the config can be read, the checks of the backend's nodes.
      const core = backendCoreSchema().safeParse(spec);
      const checked = core.success ? this.checkImplementation(doc, core.data.type, core.data.config, diag, locate) : undefined;
      const forChecks = checked === undefined ? (factory === undefined ? undefined : configForChecks(factory, undefined)) : checked.valid ? { config: checked.config } : checked.forChecks;
      if (use) this.broken(doc.name, factory === undefined ? undefined : factory.type, forChecks);
      return;
    }
    const { type, config } = parsed.data.spec;
    const checked = this.checkImplementation(doc, type, config, diag);
    if (!use) return;
    if (checked === undefined || !checked.valid) {
      this.broken(doc.name, this.registry.get(type) === undefined ? undefined : type, checked?.forChecks);
      return;
    }
    // Deleted first: placed where it is declared, even after a rejected document of the same name.
    this.declared.delete(doc.name);
    this.declared.set(doc.name, { status: 'ok', decl: { id: doc.name, type, config: checked.config, source: doc.locate(['metadata', 'name']) } });
  }

  /**
   * A Backend's `spec.type` and `spec.config` checked against the implementation, errors reported at
   * `locate`: the parsed config, or, where it has errors, what of it its nodes' checks may use; undefined
   * for an unknown type.
   */
  private checkImplementation(
    doc: RawDocument,
    type: string,
    config: Record<string, unknown>,
    diag: DiagnosticBag,
    locate: RawDocument['locate'] = doc.locate,
  ): { readonly valid: true; readonly config: unknown } | { readonly valid: false; readonly forChecks: { readonly config: unknown } | undefined } | undefined {
    const factory = this.registry.get(type);
    if (factory === undefined) {
      warnConfigNotInterpolated(config, [], locate, diag);
      diag.error(locate(['spec', 'type']), 'unknown-backend-type', `backend type "${type}" is not one of ${this.registry.types().join(', ')}${suggestion(type, this.registry.types())}`);
      return undefined;
    }
    const cfg = factory.configSchema.safeParse(config);
    warnConfigNotInterpolated(config, cfg.success ? [] : cfg.error.issues, locate, diag);
    if (!cfg.success) {
      reportZodIssues(cfg.error.issues, { schema: factory.configSchema, input: config, prefix: ['spec', 'config'], owner: `${article(type)} ${type} backend's config`, locate, diag });
      return { valid: false, forChecks: configForChecks(factory, { value: config, issues: cfg.error.issues }) };
    }
    return { valid: true, config: cfg.data };
  }

  rejectDocument(kind: string, name: string): void {
    if (kind === 'Backend' && this.declared.get(name)?.status !== 'ok') this.broken(name, undefined);
  }

  beforeNodes(goals: readonly GoalInfo[], diag: DiagnosticBag): void {
    // A `local` Backend declared with errors is not silently replaced by the default one.
    if (!this.declared.has('local') && this.registry.get('local') !== undefined) {
      const cfg = this.registry.require('local').configSchema.parse(DEFAULT_LOCAL_BACKEND.config);
      this.declared.set('local', { status: 'ok', decl: { id: 'local', type: 'local', config: cfg } });
    }
    this.policy?.prepare?.(goals, diag);
  }

  checkDefaultBackend(backend: string, source: SourceLocation, diag: DiagnosticBag): void {
    if (!this.declared.has(backend)) this.notConfigured(backend, source, diag);
  }

  /** The output keys the node's backend declares for its kind (the node's spec need not be valid); undefined (any key) when it declares none. */
  outputKeys(node: { readonly type: string; readonly backend: string | undefined }): { readonly keys: readonly string[]; readonly where: string } | undefined {
    const backendId = node.backend ?? DEFAULT_LOCAL_BACKEND.id;
    const declared = this.declared.get(backendId);
    // Its type says them, whatever its config: a Backend declared with errors, of a known type, too.
    const type = declared?.status === 'ok' ? declared.decl.type : declared?.type;
    const keys = type !== undefined && isInfraNodeType(node.type) ? this.registry.get(type)?.outputs?.[node.type] : undefined;
    return keys === undefined || keys === 'any' ? undefined : { keys, where: `${node.type}, backend "${backendId}"` };
  }

  /**
   * The edges each backend instance implies among its own nodes (never
   * across instances of other places: two roots are two namespaces; those of
   * one type whose `location` is one, two local backends with one root, are
   * one), asked of its implementation with the instance's config
   * (`relations`); and, from the same call, the resources two of them reach
   * by different names, each a `duplicate-resource` error at the later node,
   * and the nodes that cannot be made as the goals have them
   * (`NodeConflict`), each an error at the node.
   */
  impliedEdges(nodes: readonly BuiltNode<InfraDesiredNodeSpec>[], diag: DiagnosticBag): readonly ImpliedEdge[] {
    const where = this.cwd === undefined ? undefined : { cwd: this.cwd };
    type Place = { readonly backend: BackendDeclaration; readonly factory: BackendFactory; readonly nodes: BuiltNode<InfraDesiredNodeSpec>[] };
    const places = new Map<string, Place>();
    const byBackend = new Map<string, Place | undefined>();
    /** Each backend instance with the nodes it holds (several may share one place). */
    const instances = new Map<string, Place>();
    const placeOf = (backendId: string): Place | undefined => {
      if (byBackend.has(backendId)) return byBackend.get(backendId);
      const backend = this.checkedBackend(backendId, this.declared.get(backendId));
      const factory = backend === undefined ? undefined : this.registry.get(backend.type);
      let place: Place | undefined;
      if (backend !== undefined && factory !== undefined) {
        const key = factory.location === undefined || where === undefined ? `\0${backendId}` : `${backend.type}\0${factory.location(backend.config, where)}`;
        place = places.get(key) ?? { backend, factory, nodes: [] };
        places.set(key, place);
        instances.set(backendId, { backend, factory, nodes: [] });
      }
      byBackend.set(backendId, place);
      return place;
    };
    for (const n of nodes) {
      placeOf(n.spec.backendId)?.nodes.push(n);
      instances.get(n.spec.backendId)?.nodes.push(n);
    }
    const edges: ImpliedEdge[] = [];
    for (const { backend, factory, nodes: group } of places.values()) {
      const relations = factory.relations?.(
        group.map((n) => ({ id: n.id, spec: n.spec.spec })),
        backend.config,
        where,
      );
      if (relations === undefined) continue;
      const byId = new Map(group.map((n) => [n.id, n]));
      for (const d of relations.implied) {
        const from = byId.get(d.from);
        if (from !== undefined && byId.has(d.on)) edges.push({ from: d.from, on: d.on, why: d.why, source: from.locate(['spec', ...d.path]) });
      }
      for (const s of relations.shared) {
        const node = byId.get(s.node);
        const other = byId.get(s.other);
        if (node === undefined || other === undefined) continue;
        const at = formatLocation(other.locate(['spec', ...s.path]));
        diag.error(node.locate(['spec', ...s.path]), 'duplicate-resource', `node "${s.node}" manages ${s.what}, and node "${s.other}" manages ${s.otherWhat} (${at}): one place; one of them must go`);
      }
      for (const c of relations.conflicts ?? []) conflict(c, byId, diag);
    }
    if (where !== undefined) this.conflictsAcross(nodes, instances.values(), where, diag);
    return edges;
  }

  /** Each instance of a type with the nodes of the goals it holds, asked what they conflict with across instances (`BackendFactory.conflictsAcross`). */
  private conflictsAcross(
    nodes: readonly BuiltNode<InfraDesiredNodeSpec>[],
    instances: Iterable<{ readonly backend: BackendDeclaration; readonly factory: BackendFactory; readonly nodes: readonly BuiltNode<InfraDesiredNodeSpec>[] }>,
    where: { readonly cwd: string },
    diag: DiagnosticBag,
  ): void {
    const asked = [...instances].filter((i) => i.factory.conflictsAcross !== undefined);
    const byId = new Map(nodes.map((n) => [n.id, n]));
    for (const group of Map.groupBy(asked, (i) => i.backend.type).values()) {
      if (group.length < 2) continue;
      const held = group.map(({ backend, nodes: its }) => ({ backend: backend.id, config: backend.config, nodes: its.map((n) => ({ id: n.id, spec: n.spec.spec })) }));
      for (const c of group[0]!.factory.conflictsAcross!(held, where)) conflict(c, byId, diag);
    }
  }

  /**
   * Records that `decl` manages the resource its backend names (see
   * `BackendFactory.resourceKey`); a second node with the same key is an
   * error naming both. Returns the key the built spec keeps: none where a
   * `${nodes…}` reference fills in the name, as it is not known before running.
   */
  private claimResource(decl: NodeDeclaration, spec: InfraNodeSpec, backend: BackendDeclaration, factory: BackendFactory, diag: DiagnosticBag): string | undefined {
    const named = factory.resourceKey?.(spec, backend.config);
    if (named === undefined) return undefined;
    const asWritten = valueAtPath(spec, named.path);
    const templated = hasReferences(asWritten);
    const source = decl.locate(['spec', ...named.path]);
    // A name a reference fills in is known only at run time, but two nodes that write it the same way,
    // references and all, resolve to one resource: templates claim by key and text together, apart from
    // known names (the key's normal form alone could join templates that resolve apart: "${…}/../a" is "a").
    const slot = templated ? `${backend.id}\0${named.key}\0${JSON.stringify(asWritten)}` : `${backend.id}\0${named.key}`;
    const first = this.claims.get(slot);
    if (first === undefined) this.claims.set(slot, { id: decl.id, source });
    else {
      const at = formatLocation(first.source);
      const when = templated ? ' once its references resolve' : '';
      diag.error(source, 'duplicate-resource', `node "${decl.id}" manages ${named.key}${when}, as node "${first.id}" does (${at}); one of them must go`);
      return templated ? undefined : named.key;
    }
    // Through another instance of the type: roots that overlap (out, out/sub) reach one file from two backends.
    const place = templated || this.cwd === undefined ? undefined : factory.placeOf?.(spec, backend.config, { cwd: this.cwd });
    if (place !== undefined) {
      const slotOf = `${backend.type}\0${place}`;
      const other = this.places.get(slotOf);
      if (other === undefined) this.places.set(slotOf, { id: decl.id, backend: backend.id, source });
      else if (other.backend !== backend.id) {
        const at = formatLocation(other.source);
        diag.error(source, 'duplicate-resource', `node "${decl.id}" manages ${place} through backend "${backend.id}", as node "${other.id}" does through backend "${other.backend}" (${at}): their backends reach one place; one of them must go`);
      }
    }
    return templated ? undefined : named.key;
  }

  /**
   * The backend's own compile-time checks of a node, without I/O
   * (`BackendFactory.checkSpec`, and `cannotDelete` under
   * `deletionPolicy: Delete`): true when it passes them; each problem reported.
   */
  private backendChecks(decl: NodeDeclaration, spec: InfraNodeSpec, backend: BackendDeclaration, factory: BackendFactory, diag: DiagnosticBag, defaults: SpecDefaults = NO_DEFAULTS): boolean {
    const where = `(backend "${backend.id}", type ${backend.type})`;
    const check = (s: InfraNodeSpec): readonly SpecIssue[] => factory.checkSpec?.(s, backend.config, this.cwd === undefined ? undefined : { cwd: this.cwd }) ?? [];
    const issues = check(spec);
    const written = (): readonly SpecIssue[] => {
      const own = defaults.withoutThem();
      return own === undefined ? [] : check(own);
    };
    for (const [note, group] of byDefaultsNote(decl, defaults.applied, issues, written)) {
      for (const issue of group) diag.add(decl.locate(['spec', ...issue.path]), issue.severity ?? 'error', issue.code ?? 'unsupported-spec', `${issue.message} ${where}${note}`);
    }
    const errors = issues.filter((i) => i.severity !== 'warning');
    const cannotDelete = decl.deletionPolicy === 'Delete' ? factory.cannotDelete?.(spec, backend.config) : undefined;
    if (cannotDelete !== undefined) {
      diag.error(decl.locate(['deletionPolicy']), 'not-deletable', `deletionPolicy: Delete, but ${cannotDelete}: removed under prune, its delete would fail on every pass; use deletionPolicy: Orphan ${where}`);
    }
    return errors.length === 0 && cannotDelete === undefined;
  }

  build(decl: NodeDeclaration, diag: DiagnosticBag): BuiltSpec<InfraDesiredNodeSpec> | undefined {
    if (!isInfraNodeType(decl.type)) {
      diag.error(decl.locate(['type']), 'unknown-type', `type "${decl.type}" is not a known resource type${suggestion(decl.type, INFRA_NODE_TYPES)}`);
      return undefined;
    }
    const invalid = decl.invalidFields;
    const schema = specSchemas[decl.type];
    // The entries that name a field drift may have, for the backend to say whether its drift names fields.
    const ignorable = new Map<number, string>();
    decl.ignoreFields?.forEach((field, i) => {
      if (field === undefined || field.trim() === '') return; // reported by the compiler
      const problem = ignoreFieldProblem(schema, field, decl.type, decl.spec);
      if (problem !== undefined) diag.error(decl.locate(['ignoreFields', i]), 'unknown-field', `ignoreFields: ${problem}`);
      else if (identityFields[decl.type as InfraNodeType]?.includes(field) === true) {
        const why = `"${field}" names the resource of a ${decl.type} (another ${field} is another resource, never drift of this one), so there is nothing to ignore`;
        diag.error(decl.locate(['ignoreFields', i]), 'invalid-value', `ignoreFields: ${why}`);
      } else ignorable.set(i, field);
    });
    // Policy defaults go in first, and the spec is validated with them, whole: a default may fill a required
    // field, and one that breaks a rule across fields (or a backend's check) is an error, as it is written in the goal.
    const applied = this.policy === undefined || invalid?.has('spec') === true || invalid?.has('goal.environment') === true ? [] : this.policy.defaultsFor(decl, decl.type);
    const input = applied.length === 0 ? decl.spec : { ...decl.spec, ...Object.fromEntries(applied.map((d) => [d.field, d.value])) };
    const parsed = invalid?.has('spec') === true ? undefined : schema.safeParse(input);
    // Only a spec with a reference can have them (`decl.pending`: its strings that hold one).
    const writtenOnly = parsed === undefined || decl.pending === undefined ? [] : writtenOnlyIssues(decl.spec);
    const report = (list: readonly z.core.$ZodIssue[]): void => reportSpecIssues(decl, schema, input, list, applied, diag);
    const backendId = decl.backend ?? 'local';
    // An invalid `backend` (or an unreadable default) is already reported: which backend is meant is unknown.
    const backendKnown = invalid?.has('backend') !== true;
    const declared = backendKnown ? this.declared.get(backendId) : undefined;
    // A backend declared with errors is known by name, and maybe by type; its nodes are checked as far as its config can be read.
    const backend = this.checkedBackend(backendId, declared);
    const backendType = declared?.status === 'ok' ? declared.decl.type : declared?.type;
    const factory = backendType === undefined ? undefined : this.registry.get(backendType);
    let ok = backendKnown;
    if (backendKnown) {
      const where = decl.backend === undefined || decl.backendFromDefault === true ? decl.locate(['type']) : decl.locate(['backend']);
      if (backend === undefined) {
        ok = false;
        // The goal's default backend is checked once, at `spec.defaults.backend`.
        if (declared === undefined && decl.backendFromDefault !== true) this.notConfigured(backendId, where, diag);
      }
      if (factory !== undefined && !factory.kinds.includes(decl.type)) {
        diag.error(where, 'unsupported-type', `backend "${backendId}" (type ${factory.type}) cannot provision ${decl.type}; it supports ${factory.kinds.join(', ')}`);
        ok = false;
      } else if (factory?.driftNotByField !== undefined) {
        for (const [i, field] of ignorable) {
          diag.error(decl.locate(['ignoreFields', i]), 'invalid-value', `ignoreFields: backend "${backendId}" (type ${factory.type}) reports drift ${factory.driftNotByField}, so "${field}" matches none of it`);
        }
      }
    }
    let data: Record<string, unknown> | undefined = parsed?.success === true && writtenOnly.length === 0 ? parsed.data : undefined;
    // Fields kept as written in a template: what a reference will make of them is known only at run time.
    let runtimeFields: ReadonlySet<string> | undefined;
    // Set when the spec has errors: its fields without one, as far as the backend's checks read them.
    let checkable: InfraNodeSpec | undefined;
    if (parsed !== undefined && (!parsed.success || writtenOnly.length > 0)) {
      const found = parsed.success ? [] : parsed.error.issues;
      // Matched by the issue's path. A string that reads an invalid goal field fails on what it says only because of
      // that field's error; one that holds a reference is checked once resolved, by the dispatcher.
      const pending = decl.pending;
      // A secret is never an output (outputs are stored and shown, a secret among them as `<secret>`): a reference stays an error there.
      const secret = secretFields[decl.type] ?? [];
      // Those of the spec as written lie at a string that holds a reference: past the filter, which would take them to wait for it.
      const issues = [...(pending === undefined ? found : found.filter((i) => !pendingIssue(i, pending) || secret.includes(String(i.path[0])))), ...writtenOnly];
      report(issues);
      if (issues.length === 0) {
        const template = parseTemplate(schema, input, found);
        data = template?.data;
        runtimeFields = template?.asWritten;
        // Never a node dropped in silence: should the template fail too, its issues are the spec's errors.
        if (template === undefined) report(found);
      } else if (factory?.specFields !== undefined) {
        checkable = checkableSpec(decl.type, schema, input, issues, factory.specFields);
      }
    }
    // `factory` is the backend's own below, and `backend` its declaration, or what its nodes' checks may use of one with errors.
    if (!ok || data === undefined) {
      // Not built, but every problem is reported at once: the backend's checks of the fields without errors too.
      if (ok && backend !== undefined && factory !== undefined && checkable !== undefined) {
        this.backendChecks(decl, checkable, backend, factory, diag);
        this.claimResource(decl, checkable, backend, factory, diag);
      }
      return undefined;
    }
    const spec = { type: decl.type, ...data } as InfraNodeSpec;
    const defaults: SpecDefaults = { applied, withoutThem: () => specWithout(decl, schema) };
    if (backend !== undefined && factory !== undefined && !this.backendChecks(decl, spec, backend, factory, diag, defaults)) {
      this.claimResource(decl, spec, backend, factory, diag);
      return undefined;
    }
    let gate: BuiltSpec<InfraDesiredNodeSpec>['gate'];
    if (this.policy !== undefined && !POLICY_INPUTS.some((f) => invalid?.has(f) === true)) {
      // Only a policy reads what is known at run time only.
      const typed = typedReferenceFields(decl.type, schema, decl.spec, decl.pending, this.textPlaces);
      if (typed.length > 0) runtimeFields = new Set([...(runtimeFields ?? []), ...typed]);
      gate = this.policy.evaluate(decl, spec, diag, { runtimeFields }).gate;
    }
    if (applied.length > 0) this.policyDefaults.set(decl.id, applied.map(({ field, value, policy }) => ({ field, value, policy })));
    const resource = backend === undefined || factory === undefined ? undefined : this.claimResource(decl, spec, backend, factory, diag);
    const backendKey = this.backendKey(declared);
    const sameSpec = factory?.identifiedBySpecAndId === true ? sameSpecKey(spec, backendKey) : undefined;
    // A name a reference fills in is known at run time only, as for `resource`.
    const named = backend === undefined ? undefined : factory?.namedResources?.(spec, backend.config).filter((key) => !hasReferences(key));
    const names = named === undefined || named.length === 0 ? undefined : [...new Set(named)];
    return {
      spec: desiredNodeSpec(spec, backendId, decl.labels, decl.goal.environment, { resource, names, sameSpec, backendKey }),
      gate,
      deletionPolicy: statefulTypes.has(decl.type) ? 'Orphan' : undefined,
      cannotUpdate: backend === undefined || declared?.status !== 'ok' ? undefined : factory?.cannotUpdate?.(spec, backend.config),
    };
  }
}
