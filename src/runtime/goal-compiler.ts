import { z } from 'zod';
import { DiagnosticBag, sortDiagnostics, suggestion } from './diagnostics.ts';
import type { Diagnostic } from './diagnostics.ts';
import { intervalSchema } from './duration.ts';
import { isJsonObject } from './json.ts';
import { once } from './lazy.ts';
import { DesiredGraph, dependencyCycles } from './graph.ts';
import { holdsExpression, interpolateGoal } from './interpolation.ts';
import type { GoalContext, GoalField, PendingValue } from './interpolation.ts';
import { formatLocation, NODE_ID_PATTERN } from './node-spec.ts';
import type { DeletionPolicy, Dependency, DesiredNode, NodeId, NodeSettings, NodeSpec, SourceLocation } from './node-spec.ts';
import type { PathKey, SourceDocument } from './yaml-source.ts';
import { valueAtPath } from './yaml-source.ts';
import { formatPath, meantInput, reportZodIssues } from './zod-diagnostics.ts';
import type { MeantInput } from './zod-diagnostics.ts';

export const API_VERSION = 'desiredstate/v1';

/** The goal format's schemas, built on first use (see `once`). */
const schemas = once(() => {
  const nameSchema = z
    .string()
    .regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, 'names are lower-case letters, digits, ".", "_" and "-", and start and end with a letter or digit');
  const labelsSchema = z.record(z.string(), z.string({ error: 'label values are strings (quote numbers and booleans)' }));

  const envelopeSchema = z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.string(),
    metadata: z.object({ name: nameSchema }).loose(),
    spec: z.record(z.string(), z.unknown()),
  });

  // For a document whose envelope is invalid: a key that is none of the four may be one of them misspelt (`sepc:`).
  const strictEnvelopeSchema = z.strictObject(envelopeSchema.shape);

  const deletionPolicySchema = z.enum(['Orphan', 'Delete']);

  const nodeDeclarationSchema = z.strictObject({
    id: z.string().regex(NODE_ID_PATTERN, 'node ids are [a-z0-9][a-z0-9._-]*').describe('Unique across the whole goal set; [a-z0-9][a-z0-9._-]*.'),
    type: z.string().describe('The resource type, a member of the sealed spec union (for example local.file).'),
    backend: z.string().optional().describe('The backend instance (a Backend document\'s metadata.name).'),
    dependsOn: z.array(z.string()).default([]).describe('Ids of nodes that must be ready first.'),
    deletionPolicy: deletionPolicySchema.optional().describe('Orphan (default): forget the resource when the node is removed; Delete: deprovision it (with prune).'),
    ignoreFields: z
      .array(z.string().meta({ pattern: '\\S' }))
      .default([])
      .describe('Fields whose drift is neither reported nor corrected: paths inside spec as drift reports show them ("mode", "input.retentionDays"). A resource deleted out of band ("exists") is always reported.'),
    labels: labelsSchema.default({}).describe('Labels merged over the goal\'s metadata.labels.'),
    selfHeal: z.boolean().optional().describe('Override the goal\'s selfHeal for this node.'),
    interval: intervalSchema.optional().describe('Re-observe interval for this node ("30s", "5m"; at least 100ms).'),
    spec: z.record(z.string(), z.unknown()).default({}).describe('The resource spec, validated against the type\'s schema.'),
  });

  const goalDocumentSchema = z.strictObject({
    apiVersion: z.literal(API_VERSION).describe('The goal format version.'),
    kind: z.literal('Goal').describe('The document kind: Goal, Backend or Policy.'),
    metadata: z
      .strictObject({
        name: nameSchema.describe('Unique across the goal set.'),
        environment: z.string().default('default').describe('Free text; policies key on it (dev, staging, prod …).'),
        labels: labelsSchema.default({}).describe('Labels of every node of this goal (a node\'s own labels merge over them); policies check them.'),
        annotations: z.record(z.string(), z.string()).optional().describe('Free-form notes; nothing acts on them.'),
      })
      .describe('The goal\'s name, environment and labels.'),
    spec: z.strictObject({
      selfHeal: z.boolean().default(true).describe('Correct drift (true) or only report it (false).'),
      prune: z.boolean().default(false).describe('Deprovision nodes removed from this goal (with deletionPolicy: Delete).'),
      interval: intervalSchema.optional().describe('Re-observe interval for this goal\'s nodes (at least 100ms).'),
      defaults: z
        .strictObject({
          backend: z.string().optional().describe('backendId used by nodes that name none.'),
          deletionPolicy: deletionPolicySchema.optional().describe('deletionPolicy of nodes that name none: Orphan (the default) or Delete.'),
        })
        .default({})
        .describe('Defaults for the nodes of this goal.'),
      nodes: z.array(z.unknown()).default([]),
    }).describe('What this goal wants: its settings and nodes.'),
  });
  return { nameSchema, envelopeSchema, strictEnvelopeSchema, deletionPolicySchema, nodeDeclarationSchema, goalDocumentSchema };
});
type Schemas = ReturnType<typeof schemas>;

/** The envelope every document shares. */
export const envelopeSchema = (): Schemas['envelopeSchema'] => schemas().envelopeSchema;
/** A node as written in a Goal's `spec.nodes`; its `spec` is checked by the domain's factory. */
export const nodeDeclarationSchema = (): Schemas['nodeDeclarationSchema'] => schemas().nodeDeclarationSchema;
/** A Goal document. */
export const goalDocumentSchema = (): Schemas['goalDocumentSchema'] => schemas().goalDocumentSchema;

type GoalDocument = z.output<Schemas['goalDocumentSchema']>;

/** A Goal as compiled, and what of it could not be read. */
interface ReadGoal {
  readonly doc: SourceDocument;
  /** Where a path of `value` is written (a misspelt key read as the field it is near: see `meantInput`). */
  readonly locate: SourceDocument['locate'];
  readonly locateIn: SourceDocument['locateIn'];
  readonly value: GoalDocument;
  /** Goal fields that were invalid (their errors reported): nothing that depends on them is reported too. */
  readonly unknown: ReadonlySet<GoalField>;
  /** Whether the goal's default backend is unknowable (its `defaults` were invalid). */
  readonly defaultBackendUnknown: boolean;
}

/**
 * The parts of an invalid Goal that are still valid, so that its nodes are
 * checked as the user meant them (with their defaults and labels) rather than
 * drowning the real error in echoes of it. `meant` is the Goal as meant (a
 * misspelt key read as its field); what cannot be read (an invalid name,
 * environment, labels or defaults, or one absent where an unknown key may
 * stand for it) is said to be unknown. An unknown key hides nothing more than
 * an invalid value does.
 */
function salvageGoal(meant: MeantInput, nodes: unknown[]): Omit<ReadGoal, 'doc' | 'locate' | 'locateIn'> {
  const raw = isJsonObject(meant.value) ? meant.value : {};
  const meta = isJsonObject(raw.metadata) ? raw.metadata : {};
  const spec = isJsonObject(raw.spec) ? raw.spec : {};
  const unknown = new Set<GoalField>();
  const shape = goalDocumentSchema().shape;
  const pick = <T extends z.ZodType>(schema: T, path: readonly PathKey[], fallback: z.output<T>, field?: GoalField): z.output<T> => {
    const value = valueAtPath(raw, path);
    const r = schema.safeParse(value);
    if (r.success && !meant.unsureAt(path)) return r.data;
    if (field !== undefined) unknown.add(field);
    return r.success ? r.data : fallback;
  };
  const name = pick(schemas().nameSchema, ['metadata', 'name'], typeof meta.name === 'string' ? meta.name : '', 'name');
  const environment = pick(shape.metadata.shape.environment, ['metadata', 'environment'], 'default', 'environment');
  const labels = pick(shape.metadata.shape.labels, ['metadata', 'labels'], {}, 'labels');
  const defaultsRead = shape.spec.shape.defaults.safeParse(spec.defaults);
  const rawDefaults = isJsonObject(spec.defaults) ? spec.defaults : {};
  const backend = typeof rawDefaults.backend === 'string' ? rawDefaults.backend : undefined;
  const defaults = defaultsRead.success
    ? defaultsRead.data
    : { backend, deletionPolicy: pick(schemas().deletionPolicySchema.optional(), ['spec', 'defaults', 'deletionPolicy'], undefined) };
  // Nodes that name no backend get the default: if it cannot be read, which backend they use is unknown.
  const defaultBackendUnknown =
    backend === undefined &&
    ((spec.defaults !== undefined && !isJsonObject(spec.defaults)) ||
      rawDefaults.backend !== undefined ||
      meant.unsureAt(spec.defaults === undefined ? ['spec', 'defaults'] : ['spec', 'defaults', 'backend']));
  return {
    value: {
      apiVersion: API_VERSION,
      kind: 'Goal',
      metadata: { name, environment, labels },
      spec: {
        selfHeal: pick(shape.spec.shape.selfHeal, ['spec', 'selfHeal'], true),
        prune: pick(shape.spec.shape.prune, ['spec', 'prune'], false),
        interval: pick(shape.spec.shape.interval, ['spec', 'interval'], undefined),
        defaults,
        nodes,
      },
    },
    unknown,
    defaultBackendUnknown,
  };
}

/**
 * A `${` where nothing reads one (not a string in `spec`): a warning, as it is taken as written, unless
 * written as the `$${` escape. A warning, not an error: a goal that works as written keeps working.
 */
export function warnNotInterpolated(text: string, where: string, at: SourceLocation, diag: DiagnosticBag): void {
  if (!holdsExpression(text)) return;
  diag.warning(at, 'not-interpolated', `${JSON.stringify(text)} in ${where} is taken as written: interpolation and references apply to values in a Goal's spec only`);
}

/** `warnNotInterpolated` for each key and value of the labels at `path`. */
function warnLabelsNotInterpolated(labels: Readonly<Record<string, string>>, path: readonly PathKey[], locate: (path: readonly PathKey[], part?: 'key' | 'value') => SourceLocation, diag: DiagnosticBag): void {
  for (const [key, value] of Object.entries(labels)) {
    warnNotInterpolated(key, 'a label key', locate([...path, key], 'key'), diag);
    warnNotInterpolated(value, 'a label', locate([...path, key]), diag);
  }
}

type NodeFields = z.output<Schemas['nodeDeclarationSchema']>;

/**
 * A node declaration's fields, each read on its own: an invalid one is
 * replaced by its default (or its valid entries, for lists and maps) and
 * named in `invalid`, so that the node's other fields are still checked.
 * `raw` is the declaration as meant (`meantInput`): a misspelt key is read
 * as its field.
 */
function salvageNode(raw: Record<string, unknown>, meant: MeantInput): { fields: NodeFields; invalid: Set<keyof NodeFields> } {
  const invalid = new Set<keyof NodeFields>();
  const shape = nodeDeclarationSchema().shape;
  const pick = <K extends keyof NodeFields>(key: K, fallback: () => NodeFields[K]): NodeFields[K] => {
    const r = (shape[key] as unknown as z.ZodType<NodeFields[K]>).safeParse(raw[key]);
    // Absent where an unknown key near no field may stand for it (`bckend: pg` is near; `be: pg` is not): unknown too.
    if (r.success && !meant.unsureAt([key])) return r.data;
    invalid.add(key);
    return r.success ? r.data : fallback();
  };
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);
  const fields: NodeFields = {
    id: pick('id', () => (typeof raw.id === 'string' ? raw.id : '')),
    type: pick('type', () => ''),
    backend: pick('backend', () => undefined),
    dependsOn: pick('dependsOn', () => strings(raw.dependsOn)),
    deletionPolicy: pick('deletionPolicy', () => undefined),
    ignoreFields: pick('ignoreFields', () => []),
    labels: pick('labels', () => (isJsonObject(raw.labels) ? Object.fromEntries(Object.entries(raw.labels).filter((e): e is [string, string] => typeof e[1] === 'string')) : {})),
    selfHeal: pick('selfHeal', () => undefined),
    interval: pick('interval', () => undefined),
    spec: pick('spec', () => ({})),
  };
  return { fields, invalid };
}

export type NodeDeclarationInput = z.input<Schemas['nodeDeclarationSchema']>;

/** A goal's settings, as compiled. */
export interface GoalInfo extends GoalContext {
  readonly file: string;
  /** Where the goal's `metadata.environment` is written (the goal's own place when it is left out). */
  readonly environmentAt?: SourceLocation | undefined;
  readonly selfHeal: boolean;
  readonly prune: boolean;
  readonly intervalMs?: number | undefined;
  readonly nodeCount: number;
}

/** A document of a kind the domain handles (Backend, Policy …). */
export interface RawDocument {
  readonly kind: string;
  readonly name: string;
  readonly file: string;
  readonly value: Record<string, unknown>;
  locate(path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation;
  /** The position of character `index` of the string at `path`, where the source maps it (see `SourceDocument.locateIn`). */
  locateIn?(path: readonly PathKey[], index: number): SourceLocation;
}

/** What the compiler hands the domain's factory for each node. */
export interface NodeDeclaration {
  readonly id: NodeId;
  readonly type: string;
  /** The node's backend, or the goal's default; undefined when neither names one. */
  readonly backend: string | undefined;
  /** True when `backend` is the goal's default (checked once, by `checkDefaultBackend`), not named by the node. */
  readonly backendFromDefault?: boolean | undefined;
  /** Node labels merged over goal labels. */
  readonly labels: Readonly<Record<string, string>>;
  /** The spec with `${goal.*}` interpolated; `${nodes…}` references left in place. */
  readonly spec: Record<string, unknown>;
  /**
   * The strings of `spec` whose value compile cannot know (see
   * `PendingValue`). A check of one that fails on what it says (and not on
   * its type: `pendingIssue` tells them apart) would be an echo, or wrong.
   */
  readonly pending?: readonly PendingValue[] | undefined;
  readonly deletionPolicy: DeletionPolicy | undefined;
  /** The node's `ignoreFields`, for the domain to check against the type's fields; undefined where an entry is not a string (reported). */
  readonly ignoreFields?: readonly (string | undefined)[] | undefined;
  /**
   * Fields already reported as invalid and replaced by defaults: node fields
   * (`id`, `backend`, `labels`, `spec`, `ignoreFields` …) and goal fields
   * (`goal.name`, `goal.environment`, `goal.labels`). A check that depends on
   * one is skipped, as it would only echo that error.
   */
  readonly invalidFields?: ReadonlySet<string> | undefined;
  readonly goal: GoalInfo;
  readonly source: SourceLocation;
  /** Locates a path inside the node declaration, for example `['spec', 'mode']`. */
  locate(path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation;
}

/** The factory's answer for one node. */
export interface BuiltSpec<S extends NodeSpec> {
  readonly spec: S;
  /** Set when the node must not be provisioned or deleted (a policy gate). */
  readonly gate?: NodeGate | undefined;
  /** The deletion policy the domain chooses when the goal names none. */
  readonly deletionPolicy?: DeletionPolicy | undefined;
  /** Why the node's drift can never be corrected, only reported (see `NodeSettings.cannotUpdate`). */
  readonly cannotUpdate?: string | undefined;
}

/** A built node, as `NodeSpecFactory.impliedEdges` sees it. */
export interface BuiltNode<S extends NodeSpec> {
  readonly id: NodeId;
  readonly spec: S;
  /** Locates a path inside the node declaration, for example `['spec', 'path']`. */
  locate(path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation;
}

/**
 * An edge the domain implies between two nodes that nothing in the goal
 * names (a file inside a directory another node manages): `from` depends on `on`.
 */
export interface ImpliedEdge {
  readonly from: NodeId;
  readonly on: NodeId;
  /** Why, in words, for a cycle diagnostic that goes through it. */
  readonly why: string;
  /** The field that implies it (the file's path), where a cycle diagnostic points. */
  readonly source: SourceLocation;
}

/** A policy's hold on a node: never provisioned nor deleted while the goals say what they say. */
export interface NodeGate {
  /** Which rules hold it, in words (`naming:name (high, org)`); shown after `held by policy: `. */
  readonly reason: string;
  /** The findings that hold it, each where it is in the goals: what the logs say of the hold. */
  readonly findings?: readonly GateFinding[] | undefined;
}

/** One finding at or above its policy's `blockAt`, as a hold's log line names it. */
export interface GateFinding {
  readonly rule: string;
  readonly severity: string;
  readonly policy: string;
  /** What is wrong with the node, in one sentence. */
  readonly message: string;
  /** The node, or the offending field inside it. */
  readonly location: SourceLocation;
}

/**
 * The domain's half of compilation: it turns a raw declaration into a typed,
 * branded spec (or diagnostics), and understands the document kinds other
 * than `Goal`.
 */
export interface NodeSpecFactory<S extends NodeSpec> {
  /** Document kinds besides `Goal` (for example `Backend`, `Policy`). */
  readonly documentKinds: readonly string[];
  /** All type names, for "did you mean". */
  readonly nodeTypes: readonly string[];
  /** Receives every non-Goal document, before any node is built. */
  acceptDocument(doc: RawDocument, diag: DiagnosticBag): void;
  /**
   * A document of one of `documentKinds` whose envelope was invalid (its
   * errors reported, the document not accepted): its name is still declared,
   * so that what refers to it is not told it does not exist.
   */
  rejectDocument?(kind: string, name: string): void;
  /**
   * Optional: a document of one of `documentKinds` that is not used (its envelope invalid, or a second of
   * its kind and name), checked as `acceptDocument` checks one, for its diagnostics alone, so that every
   * problem in it is reported at once. Nothing of it is declared.
   */
  checkUnused?(doc: RawDocument, diag: DiagnosticBag): void;
  /** Called once after all documents and before any node. */
  beforeNodes?(goals: readonly GoalInfo[], diag: DiagnosticBag): void;
  /** Checks a goal's `spec.defaults.backend`, once, at `source` (after `beforeNodes`, whether or not the goal has nodes). */
  checkDefaultBackend?(backend: string, source: SourceLocation, diag: DiagnosticBag): void;
  /** Validates one node's spec and builds its branded spec. */
  build(decl: NodeDeclaration, diag: DiagnosticBag): BuiltSpec<S> | undefined;
  /**
   * The output keys a node of this type on this backend (undefined: the
   * domain's default) will have, so that a `${nodes.<id>.outputs.<key>}`
   * naming another is a compile error rather than a node waiting for ever,
   * with the node's type and backend in words (`where`); undefined when they
   * are open-ended (a script prints them) or not known. Asked of a node
   * whose spec is wrong too: its type and backend say what it will output.
   * Absent: every key is accepted.
   */
  outputKeys?(node: { readonly type: string; readonly backend: string | undefined }): { readonly keys: readonly string[]; readonly where: string } | undefined;
  /**
   * Edges implied by what the nodes' specs say of one another, once every
   * node is built: only the domain knows that one resource lies inside
   * another. Each becomes an implicit edge, unless the edge is already
   * there or the goal has `on` depend on `from` (see `addImpliedEdges`).
   * What the same view shows wrong (two nodes reaching one resource by
   * different names) goes in `diag`.
   */
  impliedEdges?(nodes: readonly BuiltNode<S>[], diag: DiagnosticBag): readonly ImpliedEdge[];
}

export interface CompileResult<S extends NodeSpec> {
  /** Present only when there is no error. */
  readonly graph: DesiredGraph<S> | undefined;
  readonly goals: readonly GoalInfo[];
  readonly diagnostics: readonly Diagnostic[];
  readonly gates: ReadonlyMap<NodeId, NodeGate>;
}

/**
 * Adds the domain's implied edges to the built nodes' edges (the same
 * arrays the graph and the cycle check are given), as implicit ones. An
 * edge the node already has is not added twice; nor is one against the
 * goal's own word: where `on` depends on `from` by an edge the goal
 * writes, a `dependsOn` or a `${nodes...}` reference (a directory that
 * depends on, or reads an output of, a file inside it), that order stands,
 * and a goal set that compiled before the domain implied anything does not
 * become a cycle. Two implied edges that oppose each other (two roles each
 * a member of the other) both stay: the goal says neither, and the cycle
 * they make is reported, where keeping the first would hide it until the
 * run. An implied edge is told by its `why` (a reference is implicit too).
 */
function addImpliedEdges(implied: readonly ImpliedEdge[], edgesOf: ReadonlyMap<NodeId, Dependency[]>): void {
  for (const e of implied) {
    const from = edgesOf.get(e.from);
    const on = edgesOf.get(e.on);
    if (from === undefined || on === undefined || e.from === e.on) continue;
    if (from.some((d) => d.on === e.on) || on.some((d) => d.on === e.from && d.why === undefined)) continue;
    from.push({ on: e.on, source: e.source, implicit: true, why: e.why });
  }
}

/**
 * Compiles parsed goal documents into a frozen graph. Reports every problem
 * it finds (not only the first); any error means no graph.
 */
export class GoalCompiler<S extends NodeSpec> {
  private readonly factory: NodeSpecFactory<S>;

  constructor(options: { factory: NodeSpecFactory<S> }) {
    this.factory = options.factory;
  }

  compile(documents: readonly SourceDocument[], loadDiagnostics: readonly Diagnostic[] = []): CompileResult<S> {
    const diag = new DiagnosticBag();
    diag.items.push(...loadDiagnostics);
    const kinds = ['Goal', ...this.factory.documentKinds];
    const goalDocs: ReadGoal[] = [];
    const names = new Map<string, SourceLocation>();
    const unknownKind = (doc: SourceDocument, kind: string): void => {
      diag.error(doc.locate(['kind']), 'unknown-kind', `kind "${kind}" is not one of ${kinds.join(', ')}${suggestion(kind, kinds)}`);
    };
    /** Reports a second document of the same kind and name; true if it is one. */
    const duplicate = (doc: SourceDocument, kind: string, name: string): boolean => {
      const nameKey = `${kind}/${name}`;
      const earlier = names.get(nameKey);
      if (earlier === undefined) {
        names.set(nameKey, doc.locate(['metadata', 'name']));
        return false;
      }
      diag.error(doc.locate(['metadata', 'name']), 'duplicate-name', `${kind} "${name}" is already defined at ${formatLocation(earlier)}`);
      return true;
    };
    /** The factory's check of a document it does not use (`checkUnused`), less what the envelope reported (`reported`) at the same places. */
    const checkUnused = (doc: SourceDocument, kind: string, name: string, reported: readonly Diagnostic[] = []): void => {
      if (this.factory.checkUnused === undefined || !isJsonObject(doc.value)) return;
      const bag = new DiagnosticBag();
      this.factory.checkUnused({ kind, name, file: doc.file, value: doc.value, locate: doc.locate, locateIn: doc.locateIn }, bag);
      const at = new Set(reported.map(formatLocation));
      diag.items.push(...bag.items.filter((d) => !at.has(formatLocation(d))));
    };

    for (const doc of documents) {
      if (!isJsonObject(doc.value)) {
        diag.error(doc.locate([]), 'not-a-document', 'a goal document is a map with apiVersion, kind, metadata and spec');
        continue;
      }
      if (doc.value.kind === 'Goal') {
        const goal = this.readGoal(doc, doc.value, duplicate, diag);
        if (goal !== undefined) goalDocs.push(goal);
        continue;
      }
      const env = envelopeSchema().safeParse(doc.value);
      if (!env.success) {
        const { kind } = doc.value;
        // Read strictly now that it fails: a misspelt `sepc:` is one error at the misspelling, with
        // its suggestion, as in a Goal, not "spec is required" at the top of the document.
        const strict = schemas().strictEnvelopeSchema;
        const issues = strict.safeParse(doc.value).error?.issues ?? env.error.issues;
        const owner = typeof kind === 'string' && kinds.includes(kind) ? `a ${kind}` : 'a document';
        const reported = new DiagnosticBag();
        reportZodIssues(issues, { schema: strict, input: doc.value, prefix: [], owner, locate: doc.locate, diag: reported });
        diag.items.push(...reported.items);
        if (typeof kind === 'string' && !kinds.includes(kind)) unknownKind(doc, kind);
        const name = isJsonObject(doc.value.metadata) ? doc.value.metadata.name : undefined;
        if (typeof kind === 'string' && this.factory.documentKinds.includes(kind) && typeof name === 'string') {
          this.factory.rejectDocument?.(kind, name);
          // A bad name does not hide the spec's errors (a Goal's are all reported too).
          checkUnused(doc, kind, name, reported.items);
        }
        continue;
      }
      const { kind } = env.data;
      const name = env.data.metadata.name;
      if (!kinds.includes(kind)) {
        unknownKind(doc, kind);
        continue;
      }
      if (duplicate(doc, kind, name)) {
        checkUnused(doc, kind, name);
        continue;
      }
      this.factory.acceptDocument({ kind, name, file: doc.file, value: doc.value, locate: doc.locate, locateIn: doc.locateIn }, diag);
    }

    const goals: GoalInfo[] = goalDocs.map(({ doc, locate, value }) => ({
      name: value.metadata.name,
      environment: value.metadata.environment,
      labels: value.metadata.labels,
      file: doc.file,
      environmentAt: locate(['metadata', 'environment']),
      selfHeal: value.spec.selfHeal,
      prune: value.spec.prune,
      intervalMs: value.spec.interval,
      nodeCount: value.spec.nodes.length,
    }));
    this.factory.beforeNodes?.(goals, diag);
    for (const { locate, value } of goalDocs) {
      const backend = value.spec.defaults.backend;
      if (backend !== undefined) this.factory.checkDefaultBackend?.(backend, locate(['spec', 'defaults', 'backend']), diag);
      warnNotInterpolated(value.metadata.environment, 'metadata.environment', locate(['metadata', 'environment']), diag);
      warnLabelsNotInterpolated(value.metadata.labels, ['metadata', 'labels'], locate, diag);
    }

    const declared = new Map<NodeId, SourceLocation>();
    // Ids of declarations too broken to compile: edges to them are not "unknown".
    const brokenIds = new Set<string>();
    const pending: {
      id: NodeId;
      /** The id is valid and the first of its name: edges may point to it. */
      declared: boolean;
      /** The dependency list is valid (each edge is checked below). */
      depsValid: boolean;
      goal: string;
      built: BuiltSpec<S> | undefined;
      /** The type and backend as declared, where both are valid: what its outputs will be. */
      kind: { readonly type: string; readonly backend: string | undefined } | undefined;
      settings: NodeSettings;
      source: SourceLocation;
      locate: (path: readonly PathKey[], part?: 'key' | 'value') => SourceLocation;
      /** `key`: the output a `${nodes…}` reference reads (absent for `dependsOn`). */
      deps: { on: string; source: SourceLocation; implicit: boolean; path: readonly PathKey[]; key?: string }[];
    }[] = [];
    const gates = new Map<NodeId, NodeGate>();

    goalDocs.forEach(({ locate: goalLocate, locateIn: goalLocateIn, value, unknown, defaultBackendUnknown }, gi) => {
      const goal = goals[gi]!;
      value.spec.nodes.forEach((written, ni) => {
        const base: PathKey[] = ['spec', 'nodes', ni];
        const parsed = nodeDeclarationSchema().safeParse(written);
        if (!parsed.success) reportZodIssues(parsed.error.issues, { schema: nodeDeclarationSchema(), input: written, prefix: base, owner: 'a node', locate: goalLocate, diag });
        if (!isJsonObject(written)) return;
        // The rest as meant (a misspelt key read as its field), each field on its own, so that one bad field
        // (or key) does not hide the node's other errors.
        const meant = parsed.success ? undefined : meantInput(nodeDeclarationSchema(), written, parsed.error.issues);
        const raw = meant === undefined ? written : (meant.value as Record<string, unknown>);
        const at = (path: readonly PathKey[]): PathKey[] => [...base, ...(meant === undefined ? path : meant.written(path))];
        const locate = (path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation => goalLocate(at(path), part);
        const { fields: n, invalid } = meant === undefined ? { fields: parsed.data!, invalid: new Set<keyof NodeFields>() } : salvageNode(raw, meant);
        const source = locate(['id']);
        let isDeclared = false;
        if (invalid.has('id')) {
          if (typeof raw.id === 'string') brokenIds.add(raw.id);
        } else {
          const earlier = declared.get(n.id);
          if (earlier === undefined) {
            declared.set(n.id, source);
            isDeclared = true;
          } else {
            // Not in the graph (edges to the id are the first's), but checked all the same: its own errors
            // are reported now, not once it is renamed.
            diag.error(source, 'duplicate-node', `node id "${n.id}" is already declared at ${formatLocation(earlier)}`);
          }
        }
        // `${goal.labels.k}` reads the goal's own labels (GOAL-FORMAT.md); a node's labels only tag its resource.
        const labels = { ...goal.labels, ...n.labels };
        const locateIn = (path: readonly PathKey[], index: number | undefined): SourceLocation =>
          index !== undefined && goalLocateIn !== undefined ? goalLocateIn(at(path), index) : locate(path);
        const { value: spec, references, pending: pendingValues, literalKeys } = interpolateGoal(
          n.spec,
          goal,
          (path, message, index) => diag.error(locateIn(['spec', ...path], index), 'bad-interpolation', message),
          { unknown },
        );
        for (const path of literalKeys) warnNotInterpolated(String(path.at(-1)), 'a map key', locate(['spec', ...path], 'key'), diag);
        warnLabelsNotInterpolated(n.labels, ['labels'], locate, diag);
        // Usually empty: built only for a node or goal with an invalid field.
        const invalidFields = invalid.size === 0 && unknown.size === 0 ? new Set<string>() : new Set<string>([...invalid, ...[...unknown].map((f) => `goal.${f}`)]);
        const backendFromDefault = n.backend === undefined && !invalid.has('backend');
        if (backendFromDefault && defaultBackendUnknown) invalidFields.add('backend');
        // A list with a bad entry (not a string) is checked as written, each entry on its own, as dependsOn is.
        const ignoreFields = !invalid.has('ignoreFields') ? n.ignoreFields : Array.isArray(raw.ignoreFields) ? raw.ignoreFields.map((f) => (typeof f === 'string' ? f : undefined)) : [];
        let built: BuiltSpec<S> | undefined;
        if (!invalid.has('type')) {
          built = this.factory.build(
            {
              id: n.id,
              type: n.type,
              backend: n.backend ?? value.spec.defaults.backend,
              backendFromDefault: backendFromDefault && value.spec.defaults.backend !== undefined,
              labels,
              spec: spec as Record<string, unknown>,
              pending: pendingValues.length === 0 ? undefined : pendingValues,
              deletionPolicy: n.deletionPolicy ?? value.spec.defaults.deletionPolicy,
              ignoreFields,
              invalidFields: invalidFields.size === 0 ? undefined : invalidFields,
              goal,
              source,
              locate,
            },
            diag,
          );
        }
        if (built?.gate !== undefined && isDeclared) gates.set(n.id, built.gate);
        ignoreFields.forEach((f, i) => {
          // A repeat ignores nothing more: most likely another field was meant.
          const first = f === undefined ? i : ignoreFields.indexOf(f);
          if (f?.trim() === '') diag.error(locate(['ignoreFields', i]), 'invalid-value', 'ignoreFields entries are spec paths such as "content" or "input.retentionDays"');
          else if (first < i) diag.warning(locate(['ignoreFields', i]), 'duplicate-entry', `ignoreFields: "${f!}" is listed already at ${formatLocation(locate(['ignoreFields', first]))}`);
        });
        // Edges are checked even when the spec is wrong, so that every problem is reported at once.
        const deps: (typeof pending)[number]['deps'] = [];
        const dependsOn = Array.isArray(raw.dependsOn) ? raw.dependsOn : n.dependsOn;
        dependsOn.forEach((on, i) => {
          if (typeof on === 'string') deps.push({ on, source: locate(['dependsOn', i]), implicit: false, path: ['dependsOn', i] });
        });
        for (const r of references) deps.push({ on: r.node, source: locateIn(['spec', ...r.path], r.index), implicit: true, path: ['spec', ...r.path], key: r.key });
        pending.push({
          id: n.id,
          declared: isDeclared,
          depsValid: !invalid.has('dependsOn'),
          goal: goal.name,
          built,
          kind: invalid.has('type') || invalid.has('backend') || (backendFromDefault && defaultBackendUnknown) ? undefined : { type: n.type, backend: n.backend ?? value.spec.defaults.backend },
          settings: {
            selfHeal: n.selfHeal ?? goal.selfHeal,
            prune: goal.prune,
            deletionPolicy: n.deletionPolicy ?? value.spec.defaults.deletionPolicy ?? built?.deletionPolicy ?? 'Orphan',
            ignoreFields: n.ignoreFields,
            intervalMs: n.interval ?? goal.intervalMs,
            ...(built?.cannotUpdate === undefined ? {} : { cannotUpdate: built.cannotUpdate }),
          },
          source,
          locate,
          deps,
        });
      });
    });

    // Edges, once every id is known: unknown ids get a "did you mean", and the files that could not be
    // read (a YAML error drops the document) named, as one may declare the node.
    const unreadFiles = [...new Set(loadDiagnostics.filter((d) => d.severity === 'error' && d.code !== 'duplicate-key').map((d) => d.file))];
    const unread = unreadFiles.length === 0 ? '' : `; ${unreadFiles.join(', ')}, which could not be read, may declare it`;
    const nodes: DesiredNode<S>[] = [];
    // Nodes whose dependencies could be read, with the edges that are right (not those to an unknown node
    // or to itself, each reported as such): a cycle among them is no echo of another error.
    const sound: { id: NodeId; dependsOn: Dependency[] }[] = [];
    let allIds: string[] | undefined;
    // What each node will output follows from its type and backend, even where its spec is wrong.
    const declaredKinds = new Map<NodeId, { readonly type: string; readonly backend: string | undefined }>();
    for (const p of pending) if (p.declared && p.kind !== undefined) declaredKinds.set(p.id, p.kind);
    // Each built node, and its edges, for the domain's implied edges to join.
    const edgesOf = new Map<NodeId, Dependency[]>();
    const builtNodes: BuiltNode<S>[] = [];
    for (const p of pending) {
      const edges: Dependency[] = [];
      const seen = new Set<NodeId>();
      for (const d of p.deps) {
        if (d.on === p.id) {
          if (p.declared) diag.error(d.source, 'self-dependency', `${formatPath(d.path)}: node "${p.id}" depends on itself`);
          continue;
        }
        if (!declared.has(d.on)) {
          if (brokenIds.has(d.on)) continue;
          allIds ??= [...declared.keys()];
          diag.error(d.source, 'unknown-node', `${formatPath(d.path)}: node "${p.id}" refers to unknown node "${d.on}"${suggestion(d.on, allIds.filter((id) => id !== p.id))}${unread}`);
          continue;
        }
        if (d.key !== undefined) this.checkOutputKey(d, d.key, declaredKinds.get(d.on), diag);
        if (seen.has(d.on)) continue;
        seen.add(d.on);
        edges.push({ on: d.on, source: d.source, implicit: d.implicit });
      }
      if (p.declared && p.depsValid) sound.push({ id: p.id, dependsOn: edges });
      if (p.built !== undefined && p.declared) {
        nodes.push({ id: p.id, goal: p.goal, spec: p.built.spec, dependsOn: edges, settings: p.settings, source: p.source });
        edgesOf.set(p.id, edges);
        builtNodes.push({ id: p.id, spec: p.built.spec, locate: p.locate });
      }
    }
    if (this.factory.impliedEdges !== undefined) addImpliedEdges(this.factory.impliedEdges(builtNodes, diag), edgesOf);
    // A whole number the parser read as another (`SourceDocument.inexactNumbers`), where no error already
    // refuses it: a warning or a note there (a policy finding) lets the number through, so it hides nothing.
    for (const doc of documents) {
      for (const d of doc.inexactNumbers ?? []) if (!diag.items.some((o) => o.severity === 'error' && o.file === d.file && o.line === d.line && o.col === d.col)) diag.items.push(d);
    }

    let graph: DesiredGraph<S> | undefined;
    if (!diag.hasErrors) {
      const built = DesiredGraph.build(nodes, goals);
      if (built.ok) graph = built.graph;
      else diag.items.push(...built.diagnostics);
    } else {
      diag.items.push(...dependencyCycles(sound));
    }
    const diagnostics = sortDiagnostics(diag.items);
    return { graph: diagnostics.some((d) => d.severity === 'error') ? undefined : graph, goals, diagnostics, gates };
  }

  /**
   * Reports a reference to an output its node will never have: the node
   * referring to it would otherwise wait for it for ever. The reference
   * stays an edge all the same (its node exists), so no cycle error hides.
   */
  private checkOutputKey(
    ref: { on: NodeId; source: SourceLocation; path: readonly PathKey[] },
    key: string,
    target: { readonly type: string; readonly backend: string | undefined } | undefined,
    diag: DiagnosticBag,
  ): void {
    if (target === undefined) return;
    const known = this.factory.outputKeys?.(target);
    if (known === undefined || known.keys.includes(key)) return;
    const { keys, where } = known;
    const has = keys.length === 0 ? 'it has no outputs' : `its outputs are ${keys.join(', ')}`;
    diag.error(ref.source, 'unknown-field', `${formatPath(ref.path)}: node "${ref.on}" (${where}) has no output "${key}"; ${has}${suggestion(key, keys)}`);
  }

  /**
   * Reads one `kind: Goal` document. A Goal with errors (in its header too)
   * is still read as far as it can be, so that its nodes are checked: every
   * problem is reported at once. Undefined when it has no list of nodes.
   */
  private readGoal(
    doc: SourceDocument,
    raw: Record<string, unknown>,
    duplicate: (doc: SourceDocument, kind: string, name: string) => boolean,
    diag: DiagnosticBag,
  ): ReadGoal | undefined {
    const name = isJsonObject(raw.metadata) ? raw.metadata.name : undefined;
    // A second Goal of the same name is reported, and its nodes are checked all the same.
    if (schemas().nameSchema.safeParse(name).success) duplicate(doc, 'Goal', name as string);
    const parsed = goalDocumentSchema().safeParse(raw);
    if (parsed.success) return { doc, locate: doc.locate, locateIn: doc.locateIn, value: parsed.data, unknown: new Set(), defaultBackendUnknown: false };
    reportZodIssues(parsed.error.issues, { schema: goalDocumentSchema(), input: raw, prefix: [], owner: 'a Goal', locate: doc.locate, diag });
    // The rest as meant: a misspelt key (reported above) read as the field it is near.
    const meant = meantInput(goalDocumentSchema(), raw, parsed.error.issues);
    const nodes = valueAtPath(meant.value, ['spec', 'nodes']);
    if (!Array.isArray(nodes)) return undefined;
    return {
      doc,
      locate: (path, part) => doc.locate(meant.written(path), part),
      locateIn: doc.locateIn === undefined ? undefined : (path, index) => doc.locateIn!(meant.written(path), index),
      ...salvageGoal(meant, nodes),
    };
  }
}
