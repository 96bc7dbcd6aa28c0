import { z } from 'zod';
import { DiagnosticBag, sortDiagnostics, suggestion } from './diagnostics.ts';
import type { Diagnostic } from './diagnostics.ts';
import { durationSchema } from './duration.ts';
import { DesiredGraph } from './graph.ts';
import { interpolateGoal } from './interpolation.ts';
import type { GoalContext } from './interpolation.ts';
import { NODE_ID_PATTERN } from './node-spec.ts';
import type { DeletionPolicy, Dependency, DesiredNode, NodeId, NodeSettings, NodeSpec, SourceLocation } from './node-spec.ts';
import type { PathKey, SourceDocument } from './yaml-source.ts';
import { formatPath, reportZodIssues } from './zod-diagnostics.ts';

export const API_VERSION = 'desiredstate/v1';

const nameSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$/, 'names are lower-case letters, digits, ".", "_" and "-", and start and end with a letter or digit');
const labelsSchema = z.record(z.string(), z.string({ error: 'label values are strings (quote numbers and booleans)' }));

/** The envelope every document shares. */
export const envelopeSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.string(),
  metadata: z.object({ name: nameSchema }).loose(),
  spec: z.record(z.string(), z.unknown()),
});

const deletionPolicySchema = z.enum(['Orphan', 'Delete']);

/** A node as written in a Goal's `spec.nodes`; its `spec` is checked by the domain's factory. */
export const nodeDeclarationSchema = z.strictObject({
  id: z.string().regex(NODE_ID_PATTERN, 'node ids are [a-z0-9][a-z0-9._-]*'),
  type: z.string().describe('The resource type, a member of the sealed spec union (for example local.file).'),
  backend: z.string().optional().describe('The backend instance (a Backend document\'s metadata.name).'),
  dependsOn: z.array(z.string()).default([]).describe('Ids of nodes that must be ready first.'),
  deletionPolicy: deletionPolicySchema.optional().describe('Orphan (default): forget the resource when the node is removed; Delete: deprovision it (with prune).'),
  ignoreFields: z
    .array(z.string())
    .default([])
    .describe('Fields whose drift is neither reported nor corrected: paths inside spec as drift reports show them ("mode", "input.retentionDays"), or "exists" for the whole resource.'),
  labels: labelsSchema.default({}).describe('Labels merged over the goal\'s metadata.labels.'),
  selfHeal: z.boolean().optional().describe('Override the goal\'s selfHeal for this node.'),
  interval: durationSchema.optional().describe('Re-observe interval for this node ("30s", "5m").'),
  spec: z.record(z.string(), z.unknown()).default({}).describe('The resource spec, validated against the type\'s schema.'),
});

export const goalDocumentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Goal'),
  metadata: z.strictObject({
    name: nameSchema.describe('Unique across the goal set.'),
    environment: z.string().default('default').describe('Free text; policies key on it (dev, staging, prod …).'),
    labels: labelsSchema.default({}),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.strictObject({
    selfHeal: z.boolean().default(true).describe('Correct drift (true) or only report it (false).'),
    prune: z.boolean().default(false).describe('Deprovision nodes removed from this goal (with deletionPolicy: Delete).'),
    interval: durationSchema.optional().describe('Re-observe interval for this goal\'s nodes.'),
    defaults: z
      .strictObject({
        backend: z.string().optional().describe('backendId used by nodes that name none.'),
        deletionPolicy: deletionPolicySchema.optional(),
      })
      .default({}),
    nodes: z.array(z.unknown()).default([]),
  }),
});

/**
 * The parts of an invalid Goal that are still valid, so that its nodes are
 * checked as the user meant them (with their defaults and labels) rather than
 * drowning the real error in echoes of it.
 */
function salvageGoal(raw: Record<string, unknown>, name: string, nodes: unknown[]): z.output<typeof goalDocumentSchema> {
  const meta = (raw.metadata ?? {}) as Record<string, unknown>;
  const spec = (raw.spec ?? {}) as Record<string, unknown>;
  const pick = <T extends z.ZodType>(schema: T, value: unknown, fallback: z.output<T>): z.output<T> => {
    const r = schema.safeParse(value);
    return r.success ? r.data : fallback;
  };
  const shape = goalDocumentSchema.shape;
  return {
    apiVersion: API_VERSION,
    kind: 'Goal',
    metadata: {
      name,
      environment: pick(shape.metadata.shape.environment, meta.environment, 'default'),
      labels: pick(shape.metadata.shape.labels, meta.labels, {}),
    },
    spec: {
      selfHeal: pick(shape.spec.shape.selfHeal, spec.selfHeal, true),
      prune: pick(shape.spec.shape.prune, spec.prune, false),
      interval: pick(shape.spec.shape.interval, spec.interval, undefined),
      defaults: pick(shape.spec.shape.defaults, spec.defaults, {}),
      nodes,
    },
  };
}

export type NodeDeclarationInput = z.input<typeof nodeDeclarationSchema>;

/** A goal's settings, as compiled. */
export interface GoalInfo extends GoalContext {
  readonly file: string;
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
}

/** What the compiler hands the domain's factory for each node. */
export interface NodeDeclaration {
  readonly id: NodeId;
  readonly type: string;
  /** The node's backend, or the goal's default; undefined when neither names one. */
  readonly backend: string | undefined;
  /** Node labels merged over goal labels. */
  readonly labels: Readonly<Record<string, string>>;
  /** The spec with `${goal.*}` interpolated; `${nodes…}` references left in place. */
  readonly spec: Record<string, unknown>;
  readonly deletionPolicy: DeletionPolicy | undefined;
  /** The node's `ignoreFields`, for the domain to check against the type's fields. */
  readonly ignoreFields?: readonly string[] | undefined;
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
}

export interface NodeGate {
  readonly reason: string;
  readonly details?: unknown;
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
  /** Called once after all documents and before any node. */
  beforeNodes?(goals: readonly GoalInfo[], diag: DiagnosticBag): void;
  /** Validates one node's spec and builds its branded spec. */
  build(decl: NodeDeclaration, diag: DiagnosticBag): BuiltSpec<S> | undefined;
}

export interface CompileResult<S extends NodeSpec> {
  /** Present only when there is no error. */
  readonly graph: DesiredGraph<S> | undefined;
  readonly goals: readonly GoalInfo[];
  readonly diagnostics: readonly Diagnostic[];
  readonly gates: ReadonlyMap<NodeId, NodeGate>;
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
    const goalDocs: { doc: SourceDocument; value: z.output<typeof goalDocumentSchema> }[] = [];
    const names = new Map<string, SourceLocation>();

    for (const doc of documents) {
      const env = envelopeSchema.safeParse(doc.value);
      if (!env.success) {
        if (doc.value === null || typeof doc.value !== 'object' || Array.isArray(doc.value)) {
          diag.error(doc.locate([]), 'not-a-document', 'a goal document is a map with apiVersion, kind, metadata and spec');
          continue;
        }
        reportZodIssues(env.error.issues, { schema: envelopeSchema, input: doc.value, prefix: [], owner: 'a document', locate: doc.locate, diag });
        continue;
      }
      const { kind } = env.data;
      const name = env.data.metadata.name;
      if (!kinds.includes(kind)) {
        diag.error(doc.locate(['kind']), 'unknown-kind', `kind "${kind}" is not one of ${kinds.join(', ')}${suggestion(kind, kinds)}`);
        continue;
      }
      const nameKey = `${kind}/${name}`;
      const earlier = names.get(nameKey);
      if (earlier !== undefined) {
        diag.error(doc.locate(['metadata', 'name']), 'duplicate-name', `${kind} "${name}" is already defined at ${earlier.file}:${earlier.line}:${earlier.col}`);
        continue;
      }
      names.set(nameKey, doc.locate(['metadata', 'name']));
      if (kind === 'Goal') {
        const parsed = goalDocumentSchema.safeParse(doc.value);
        if (!parsed.success) {
          reportZodIssues(parsed.error.issues, { schema: goalDocumentSchema, input: doc.value, prefix: [], owner: 'a Goal', locate: doc.locate, diag });
          // Still check the nodes, so that every problem is reported in one go.
          const nodes = (doc.value as { spec?: { nodes?: unknown } }).spec?.nodes;
          if (!Array.isArray(nodes)) continue;
          goalDocs.push({ doc, value: salvageGoal(doc.value as Record<string, unknown>, name, nodes) });
          continue;
        }
        goalDocs.push({ doc, value: parsed.data });
      } else {
        this.factory.acceptDocument({ kind, name, file: doc.file, value: doc.value as Record<string, unknown>, locate: doc.locate }, diag);
      }
    }

    const goals: GoalInfo[] = goalDocs.map(({ doc, value }) => ({
      name: value.metadata.name,
      environment: value.metadata.environment,
      labels: value.metadata.labels,
      file: doc.file,
      selfHeal: value.spec.selfHeal,
      prune: value.spec.prune,
      intervalMs: value.spec.interval,
      nodeCount: value.spec.nodes.length,
    }));
    this.factory.beforeNodes?.(goals, diag);

    const declared = new Map<NodeId, SourceLocation>();
    // Ids of declarations too broken to compile: edges to them are not "unknown".
    const brokenIds = new Set<string>();
    const pending: {
      id: NodeId;
      goal: string;
      built: BuiltSpec<S> | undefined;
      settings: NodeSettings;
      source: SourceLocation;
      deps: { on: string; source: SourceLocation; implicit: boolean; path: readonly PathKey[] }[];
    }[] = [];
    const gates = new Map<NodeId, NodeGate>();

    goalDocs.forEach(({ doc, value }, gi) => {
      const goal = goals[gi]!;
      value.spec.nodes.forEach((raw, ni) => {
        const base: PathKey[] = ['spec', 'nodes', ni];
        const locate = (path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation => doc.locate([...base, ...path], part);
        const parsed = nodeDeclarationSchema.safeParse(raw);
        if (!parsed.success) {
          reportZodIssues(parsed.error.issues, { schema: nodeDeclarationSchema, input: raw, prefix: base, owner: 'a node', locate: doc.locate, diag });
          const rawId = raw !== null && typeof raw === 'object' ? (raw as { id?: unknown }).id : undefined;
          if (typeof rawId === 'string') brokenIds.add(rawId);
          return;
        }
        const n = parsed.data;
        const source = locate(['id']);
        const earlier = declared.get(n.id);
        if (earlier !== undefined) {
          diag.error(source, 'duplicate-node', `node id "${n.id}" is already declared at ${earlier.file}:${earlier.line}:${earlier.col}`);
          return;
        }
        declared.set(n.id, source);
        const labels = { ...goal.labels, ...n.labels };
        // `${goal.labels.k}` reads the goal's own labels (GOAL-FORMAT.md); a node's labels only tag its resource.
        const ctx: GoalContext = { name: goal.name, environment: goal.environment, labels: goal.labels };
        const locateIn = (path: readonly PathKey[], index: number | undefined): SourceLocation =>
          index !== undefined && doc.locateIn !== undefined ? doc.locateIn([...base, ...path], index) : locate(path);
        const { value: spec, references } = interpolateGoal(n.spec, ctx, (path, message, index) => {
          diag.error(locateIn(['spec', ...path], index), 'bad-interpolation', message);
        });
        const built = this.factory.build(
          {
            id: n.id,
            type: n.type,
            backend: n.backend ?? value.spec.defaults.backend,
            labels,
            spec: spec as Record<string, unknown>,
            deletionPolicy: n.deletionPolicy ?? value.spec.defaults.deletionPolicy,
            ignoreFields: n.ignoreFields,
            goal,
            source,
            locate,
          },
          diag,
        );
        if (built?.gate !== undefined) gates.set(n.id, built.gate);
        n.ignoreFields.forEach((f, i) => {
          if (f.trim() === '') diag.error(locate(['ignoreFields', i]), 'invalid-value', 'ignoreFields entries are spec paths such as "content" or "input.retentionDays"');
        });
        // Edges are checked even when the spec is wrong, so that every problem is reported at once.
        const deps: (typeof pending)[number]['deps'] = [];
        n.dependsOn.forEach((on, i) => deps.push({ on, source: locate(['dependsOn', i]), implicit: false, path: ['dependsOn', i] }));
        for (const r of references) deps.push({ on: r.node, source: locateIn(['spec', ...r.path], r.index), implicit: true, path: ['spec', ...r.path] });
        pending.push({
          id: n.id,
          goal: goal.name,
          built,
          settings: {
            selfHeal: n.selfHeal ?? goal.selfHeal,
            prune: goal.prune,
            deletionPolicy: n.deletionPolicy ?? value.spec.defaults.deletionPolicy ?? built?.deletionPolicy ?? 'Orphan',
            ignoreFields: n.ignoreFields,
            intervalMs: n.interval ?? goal.intervalMs,
          },
          source,
          deps,
        });
      });
    });

    // Edges, once every id is known: unknown ids get a "did you mean".
    const nodes: DesiredNode<S>[] = [];
    let allIds: string[] | undefined;
    for (const p of pending) {
      const edges: Dependency[] = [];
      const seen = new Set<NodeId>();
      for (const d of p.deps) {
        if (d.on === p.id) {
          diag.error(d.source, 'self-dependency', `${formatPath(d.path)}: node "${p.id}" depends on itself`);
          continue;
        }
        if (!declared.has(d.on)) {
          if (brokenIds.has(d.on)) continue;
          allIds ??= [...declared.keys()];
          diag.error(d.source, 'unknown-node', `${formatPath(d.path)}: node "${p.id}" refers to unknown node "${d.on}"${suggestion(d.on, allIds)}`);
          continue;
        }
        if (seen.has(d.on)) continue;
        seen.add(d.on);
        edges.push({ on: d.on, source: d.source, implicit: d.implicit });
      }
      if (p.built !== undefined) {
        nodes.push({ id: p.id, goal: p.goal, spec: p.built.spec, dependsOn: edges, settings: p.settings, source: p.source });
      }
    }

    let graph: DesiredGraph<S> | undefined;
    if (!diag.hasErrors) {
      const built = DesiredGraph.build(nodes);
      if (built.ok) graph = built.graph;
      else diag.items.push(...built.diagnostics);
    }
    const diagnostics = sortDiagnostics(diag.items);
    return { graph: diagnostics.some((d) => d.severity === 'error') ? undefined : graph, goals, diagnostics, gates };
  }
}
