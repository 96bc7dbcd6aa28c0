import { realpath } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  allowlistedEnv,
  checkDelete,
  execRequest,
  holdsSecretRef,
  INFRA_NODE_TYPES,
  locateProgram,
  maskSecretValue,
  parseApply,
  parseRead,
  processLeaseDir,
  resourceBackend,
  runProcess,
  SecretMask,
  secretFields,
  standingOf,
  successOutput,
  toObservation,
  updatedOutputs,
} from '../../infra/index.ts';
import type {
  BackendContext,
  BackendFactory,
  BackendHealth,
  BackendNode,
  ExecRequest,
  InfraNodeType,
  ProcessOutcome,
  ProvisionIntent,
  ResourceProvisioner,
  ScriptStanding,
  SpecIssue,
} from '../../infra/index.ts';
import { artifactHash, assertNever, fault, FaultError, isWholeReference, KeyedSerializer, sha256, SqliteStateStore, stableStringify, withoutIgnored, writableOrCreatable } from '../../runtime/index.ts';
import type { ArtifactLedger, ArtifactRecord, ArtifactUse, Fault, Observation, OperationContext, Outputs, ProvisionResult } from '../../runtime/index.ts';
import { ScriptClient } from './client.ts';
import { scriptConfigSchema } from './config.ts';
import type { ScriptConfig } from './config.ts';
import { gateFor, shortHash } from './gate.ts';
import type { ScriptVerb } from './gate.ts';
import { generatorFrom } from './generator.ts';
import type { ScriptGenerator } from './generator.ts';
import { inputOf, shapeKey, shapeOf } from './shape.ts';
import { templateFor } from './templates.ts';

export { scriptConfigSchema, generatorConfigSchema } from './config.ts';
export type { ScriptConfig, GeneratorConfig } from './config.ts';
export { commandGenerator, PROTOCOL_INSTRUCTIONS, templateGenerator, validateScript } from './generator.ts';
export type { GenerationRequest, ScriptGenerator } from './generator.ts';
export { gateFor, shortHash } from './gate.ts';
export type { RunGate, ScriptVerb } from './gate.ts';
export { inputOf, shapeKey, shapeOf } from './shape.ts';
export type { Shape } from './shape.ts';
export { TEMPLATES, templateFor } from './templates.ts';

/** Kinds a script may provision: any without secret fields (a script never sees secret values). */
const SCRIPT_KINDS: readonly InfraNodeType[] = INFRA_NODE_TYPES.filter((t) => (secretFields[t] ?? []).length === 0);

/**
 * Turns at the files the built-in templates rewrite, by real path: a change reads its file and writes
 * it back whole, so two at once on one file lose one's key. Shared by every script backend in the
 * process, whose roots may overlap.
 */
const fileTurns = new KeyedSerializer();

/** The script a node uses, or why none may be used. */
type Resolved = { readonly script: ArtifactRecord } | { readonly held: string; readonly code: 'script-rejected' };

/** Options for tests and embedders: the ledger to use instead of `<stateDir>/state.db`. */
export interface ScriptProvisionerOptions {
  readonly ledger?: ArtifactLedger | undefined;
}

/**
 * Standalone mode: provisions nodes by running scripts a generator wrote,
 * trusted only as far as their record earns. Lifecycle per (kind, input
 * shape, generator): generate → store content-addressed in the ledger →
 * human review → runs. An unreviewed or rejected script never runs; a
 * reviewed one below the trust bar needs a per-run approval for create,
 * update and delete in the environments that require it. Every run goes to
 * the ledger; create, update and delete outcomes are the trials of its
 * Beta(1 + successes, 1 + failures) trust, each a success only when the
 * script's own read right after it finds it done.
 */
export class ScriptProvisioner implements ResourceProvisioner {
  readonly kinds = SCRIPT_KINDS;
  private readonly config: ScriptConfig;
  private readonly ctx: BackendContext;
  /** The scripts' working directory, absolute. */
  private readonly root: string;
  private readonly client: ScriptClient;
  private readonly generator: ScriptGenerator;
  private readonly env: Readonly<Record<string, string>>;
  /**
   * Allowlisted values a script or the generator may quote back (an API key): never in a fault, a reason
   * or a run's record. A script quoting one is stored as generated (what runs, and what its hash and
   * review name), in the owner-only state file and script directory; `scripts show` masks it.
   */
  readonly mask: SecretMask;
  private readonly injectedLedger: ArtifactLedger | undefined;
  private store: SqliteStateStore | undefined;
  /** Generations in flight per cache key: concurrent nodes of one shape share one generator run. */
  private readonly generating = new Map<string, Promise<ArtifactRecord>>();

  constructor(config: ScriptConfig, ctx: BackendContext, options: ScriptProvisionerOptions = {}) {
    this.config = config;
    this.ctx = ctx;
    this.env = allowlistedEnv(ctx.env, config.env);
    this.mask = SecretMask.fromEnv(this.env);
    this.root = resolve(ctx.cwd, config.root);
    this.client = new ScriptClient({
      scriptDir: join(ctx.stateDir, 'scripts'),
      root: this.root,
      env: this.env,
      timeoutMs: config.timeout,
      maxOutputBytes: config.maxOutputBytes,
      leaseDir: processLeaseDir(ctx.stateDir),
    });
    this.generator = generatorFrom(config.generator, { cwd: ctx.cwd, env: this.env });
    this.injectedLedger = options.ledger;
  }

  async observe(node: BackendNode, ctx: OperationContext): Promise<Observation> {
    const resolved = await this.resolve(node, ctx);
    if ('held' in resolved) return { status: 'indeterminate', reason: resolved.held, waiting: true };
    const { script } = resolved;
    const standing = this.standing(script.hash);
    const readGate = gateFor(standing, 'read', this.gateContext(script.hash, node));
    if (readGate.gate !== 'open') {
      ctx.log.info({ node: node.id, script: script.hash, standing: standing.standing }, 'script held');
      return { status: 'indeterminate', reason: readGate.reason, waiting: true };
    }
    const stdout = await this.read(script, node, ctx);
    const obs = toObservation(inputOf(node.spec.spec), parseRead(stdout), ctx.outputsOf(node.id), node.settings.ignoreFields);
    if (ctx.beforeDelete === true) {
      // Read before its delete (the node left the goals): found, its delete follows, and waits here for its
      // approval (held, as a create waits) rather than failing when sent. Nothing of a create or an update is
      // asked for or settled: an approval of the delete given meanwhile is kept for it.
      if (obs.status !== 'upToDate' && obs.status !== 'drifted') return obs;
      return this.awaitingApproval(script, standing, node, 'delete', ctx) ?? obs;
    }
    // A change would follow: say now that it cannot run, so the node shows held (⊘) rather than failing later.
    // A difference is changed under selfHeal, and otherwise only where the goal changed since it was applied
    // (asked only of a node a change could follow: a steady pass over nodes in sync asks nothing).
    const verb = obs.status === 'absent' ? 'create' : obs.status === 'drifted' ? 'update' : undefined;
    const changed = verb !== undefined && (node.settings.selfHeal || ctx.appliedAt?.(node.id, node.spec, obs.status === 'drifted' ? obs.diffs : undefined) !== true);
    if (changed) return this.awaitingApproval(script, standing, node, verb, ctx) ?? obs;
    // Nothing to change: an approval it waited for is moot, and a grant left open would be taken, unasked, by a later change.
    if (obs.status === 'upToDate') this.settle(script, node, ctx);
    return obs;
  }

  /**
   * The observation of a node whose `verb` waits for a per-run approval (`waiting`, with what to approve and
   * how), asked for now (`scripts approve-run` answers it); undefined where it may run: its gate is open, or
   * an approval given for this verb and input is open.
   */
  private awaitingApproval(script: ArtifactRecord, standing: ScriptStanding, node: BackendNode, verb: ScriptVerb, ctx: OperationContext): Observation | undefined {
    const gate = gateFor(standing, verb, this.gateContext(script.hash, node));
    if (gate.gate !== 'approval') return undefined;
    const use = this.use(node, verb);
    // A grant given for another input (the goal changed since) permits nothing now: void.
    this.ledger().voidOtherInputs(script.hash, node.id, use.inputDigest);
    if (this.ledger().openGrant(script.hash, node.id, use) !== undefined) return undefined;
    // What `scripts approve-run` answers, with a grant for this verb and this input only.
    this.ledger().request(script.hash, node.id, use);
    ctx.log.info({ node: node.id, script: script.hash, verb, trust: standing.trust.lower }, 'script awaits a per-run approval');
    return { status: 'indeterminate', reason: this.approvalReason(gate.reason, script, node, use), waiting: true };
  }

  async provision(node: BackendNode, intent: ProvisionIntent, ctx: OperationContext): Promise<ProvisionResult> {
    const resolved = await this.resolve(node, ctx);
    // The read before it holds a node whose change awaits a person (a review, a per-run approval): one found
    // so only here (its approval taken or voided since that read) is a permanent fault of this node, not an
    // `auth` one: those count against the backend's circuit breaker, and a few deletes awaiting approval
    // would stop every other node of the backend. Its next read holds it.
    if ('held' in resolved) throw new FaultError(fault('permanent', resolved.held, { code: resolved.code }));
    const { script } = resolved;
    const standing = this.standing(script.hash);
    const gate = gateFor(standing, intent.verb, this.gateContext(script.hash, node));
    let grantId: number | null = null;
    switch (gate.gate) {
      case 'open':
        break;
      case 'closed':
        throw new FaultError(fault('permanent', gate.reason, { code: gate.code, hint: `desiredstate scripts show ${shortHash(script.hash)}` }));
      case 'approval': {
        // The input `write` hands the script below: a grant permits the run with the input it was given for.
        const use = this.use(node, intent.verb);
        this.ledger().voidOtherInputs(script.hash, node.id, use.inputDigest);
        const grant = this.ledger().takeGrant(script.hash, node.id, use);
        if (grant === undefined) {
          // None open (taken or voided since the read that let it through, `awaitingApproval`): asked for again here.
          this.ledger().request(script.hash, node.id, use);
          throw new FaultError(fault('permanent', this.approvalReason(gate.reason, script, node, use), { code: 'script-needs-approval' }));
        }
        grantId = grant.id;
        ctx.log.info({ node: node.id, script: script.hash, grant: grant.id, by: grant.by }, 'per-run approval used');
        break;
      }
      default:
        return assertNever(gate, 'run gate');
    }
    if (intent.verb === 'update') ctx.log.debug({ node: node.id, paths: intent.diffs.map((d) => d.path) }, 'script update');
    const write = (): Promise<Outputs> => this.write(script, node, intent, grantId, ctx);
    const target = await this.serialKey(node);
    return { status: 'done', outputs: await (target === undefined ? write() : fileTurns.run(target, write, ctx.signal)) };
  }

  async health(ctx: { signal: AbortSignal }): Promise<BackendHealth> {
    // Every script runs in the root: one that cannot be made or written in (a file there) fails them all.
    const root = await writableOrCreatable(this.root);
    if (!root.ok) return { status: 'unhealthy', message: root.message };
    const generator = this.config.generator;
    switch (generator.type) {
      case 'command': {
        // Say so before the first node fails: a generator that cannot start generates nothing. Only
        // looked for, never run (it would be asked for a script).
        const where = await locateProgram(generator.command[0]!, { cwd: this.ctx.cwd, env: this.env });
        if ('found' in where) return { status: 'healthy' };
        return { status: 'unhealthy', message: `the generator command cannot be run: ${where.missing}; check generator.command, and that PATH is in the env allowlist` };
      }
      case 'template': {
        // The built-in templates are sh + jq: say so before the first node fails.
        const r = await runProcess({ argv: ['jq', '--version'], cwd: this.ctx.cwd, env: this.env, timeoutMs: 5000, maxOutputBytes: 4096, signal: ctx.signal });
        return r.status === 'exited' && r.exitCode === 0 ? { status: 'healthy' } : { status: 'unhealthy', message: 'jq is not on PATH; the built-in script templates need it' };
      }
      default:
        return assertNever(generator, 'generator config');
    }
  }

  close(): Promise<void> {
    this.store?.close();
    this.store = undefined;
    return Promise.resolve();
  }

  /** The ledger: injected, or the state store's, opened without the daemon's lock (it only adds rows). */
  private ledger(): ArtifactLedger {
    if (this.injectedLedger !== undefined) return this.injectedLedger;
    this.store ??= SqliteStateStore.open({ path: join(this.ctx.stateDir, 'state.db'), lock: false });
    return this.store.artifacts;
  }

  private standing(hash: string): ScriptStanding {
    const ledger = this.ledger();
    return standingOf(ledger.latestReview(hash), ledger.tally(hash), this.config.trust);
  }

  /**
   * A change of `node` as an approval covers it: the verb, and the input the script is handed (the
   * script is the grant's hash, the node its subject), as a digest and as the approver reads it.
   */
  private use(node: BackendNode, verb: ScriptVerb): ArtifactUse {
    const input = inputOf(node.spec.spec);
    return { action: verb, inputDigest: sha256(stableStringify(input)), input: this.mask.text(JSON.stringify(maskSecretValue(input, 'input'))) };
  }

  /** Why a change waits for an approval: `reason`, and that the last one given is void where it was for another input. */
  private approvalReason(reason: string, script: ArtifactRecord, node: BackendNode, use: ArtifactUse): string {
    const last = this.ledger().lastGrant(script.hash, node.id);
    if (last === undefined || last.usedAt !== null || last.inputDigest === use.inputDigest) return reason;
    return `${reason} (the input changed since ${last.by} approved a run at ${new Date(last.at).toISOString()}: that approval is void)`;
  }

  private gateContext(hash: string, node: BackendNode): Parameters<typeof gateFor>[2] {
    return { hash, node: node.id, environment: node.spec.environment, requireApprovalIn: this.config.requireApprovalBelowTrust, policy: this.config.trust };
  }

  /**
   * The real path of the file a node's changes rewrite, where a built-in template names it; undefined
   * for a command generator's scripts, which say nothing of what they touch. Its changes take turns
   * (`fileTurns`), which the runtime gives them without a slot held while they wait.
   */
  async serialKey(node: BackendNode): Promise<string | undefined> {
    if (this.config.generator.type !== 'template') return undefined;
    const input = inputOf(node.spec.spec);
    const template = templateFor(node.spec.spec.type, shapeOf(input));
    const path = template === undefined ? undefined : input[template.target];
    return typeof path === 'string' ? realPathOf(resolve(this.root, path)) : undefined;
  }

  /** The newest script for the node's (kind, shape) that is not rejected, generating one when there is none. */
  private async resolve(node: BackendNode, ctx: OperationContext): Promise<Resolved> {
    const kind = node.spec.spec.type;
    const shape = shapeOf(inputOf(node.spec.spec));
    const key = shapeKey(shape);
    const ledger = this.ledger();
    for (const candidate of ledger.candidates(kind, key, this.generator.id)) {
      if (ledger.latestReview(candidate.hash)?.verdict !== 'rejected') return { script: candidate };
    }
    const cacheKey = `${kind}\n${key}`;
    let pending = this.generating.get(cacheKey);
    if (pending === undefined) {
      pending = (async () => {
        const content = await this.generator.generate({ kind, shape }, { signal: ctx.signal, log: ctx.log });
        const stored = ledger.put({ kind, shape: key, origin: this.generator.id, content });
        ctx.log.info({ node: node.id, script: stored.hash, kind, shape: key, generator: this.generator.id }, 'script generated');
        return stored;
      })().finally(() => this.generating.delete(cacheKey));
      this.generating.set(cacheKey, pending);
    }
    const script = await pending;
    const review = ledger.latestReview(script.hash);
    if (review?.verdict === 'rejected') {
      // A deterministic generator gives the same text again: hold rather than loop.
      return {
        held: `script ${shortHash(script.hash)} was rejected and generator ${this.generator.id} produced it again; change the generator or its templates, or approve it`,
        code: 'script-rejected',
      };
    }
    return { script };
  }

  /** Runs `read`, records it in the ledger, and returns its stdout or throws its classified fault. */
  private async read(script: ArtifactRecord, node: BackendNode, ctx: OperationContext): Promise<string> {
    const outcome = await this.execute(script, node, 'read', execRequest(node.id, inputOf(node.spec.spec), ctx), ctx);
    const stdout = this.answer(script, node, 'read', outcome, null, ctx, () => successOutput('read', outcome));
    this.record(script, node, 'read', outcome, null, { counted: false }, ctx);
    return stdout;
  }

  /**
   * What a run answered, as `parse` reads it; where it cannot (a failed run, malformed output: the
   * script's failure too, checked before a success is recorded), the failure is recorded and thrown.
   */
  private answer<T>(script: ArtifactRecord, node: BackendNode, verb: ScriptVerb, outcome: ProcessOutcome, grantId: number | null, ctx: OperationContext, parse: () => T): T {
    try {
      return parse();
    } catch (err) {
      // resourceBackend masks what the call answers; the ledger is written here, so this masks on its own.
      const masked = this.mask.thrown(err);
      this.record(script, node, verb, outcome, grantId, { failure: masked.fault.message }, ctx);
      throw masked;
    }
  }

  /**
   * Runs a create, update or delete, then the script's own `read`: the run is a success (a trial that
   * earns trust) only when that read finds what was asked (the input's state; after a delete, nothing).
   * Its exit status alone proves nothing: a script whose update exits 0 and changes nothing was
   * "corrected" again each pass, earned a success each time, and ran alone in prod once over the bar.
   * One read per change. Returns the outputs to record, or throws the classified fault.
   */
  private async write(script: ArtifactRecord, node: BackendNode, intent: ProvisionIntent, grantId: number | null, ctx: OperationContext): Promise<Outputs> {
    const verb = intent.verb;
    const input = inputOf(node.spec.spec);
    const outcome = await this.execute(script, node, verb, execRequest(node.id, input, ctx), ctx);
    const outputs = this.answer(script, node, verb, outcome, grantId, ctx, () => answered(intent, successOutput(verb, outcome), ctx.outputsOf(node.id)));
    // Read as the next pass would, with the outputs this run gave (a read may find its resource by them).
    const after = { outputsOf: (id: string) => (id === node.id && verb !== 'delete' ? outputs : ctx.outputsOf(id)) };
    const read = await this.execute(script, node, 'read', execRequest(node.id, input, after), ctx);
    let seen: Observation;
    try {
      seen = this.mask.observation(toObservation(input, parseRead(successOutput('read', read)), after.outputsOf(node.id), node.settings.ignoreFields));
    } catch (err) {
      seen = { status: 'failed', fault: this.mask.thrown(err).fault };
    }
    const readRun = seen.status === 'failed' ? { failure: seen.fault.message } : { counted: false };
    if (read.status === 'aborted') {
      // Stopped (shutdown) before it could tell: it ran to exit 0, and the next pass observes it. No trial.
      this.record(script, node, verb, outcome, grantId, { counted: false, note: 'not checked: the read after it was aborted' }, ctx);
      this.record(script, node, 'read', read, null, readRun, ctx);
      return outputs;
    }
    const shortfall = shortfallOf(shortHash(script.hash), verb, seen, node.settings.ignoreFields);
    this.record(script, node, verb, outcome, grantId, shortfall === undefined ? { counted: true } : { failure: shortfall.message }, ctx);
    this.record(script, node, 'read', read, null, readRun, ctx);
    // A create that exited 0 may have made its resource, found by outputs that are not recorded with a
    // failure: it stays pending (`cutShort`), and the next read is told it was interrupted, never
    // answered "absent" and created a second time.
    if (shortfall !== undefined) throw new FaultError(verb === 'create' ? { ...shortfall, cutShort: true } : shortfall);
    // Done: no other approval of this node's is left open for a later change to take.
    this.settle(script, node, ctx);
    return outputs;
  }

  /** The node waits for no approval of this script any more: its request dropped, its open grants voided. */
  private settle(script: ArtifactRecord, node: BackendNode, ctx: OperationContext): void {
    const voided = this.ledger().settle(script.hash, node.id);
    if (voided > 0) ctx.log.info({ node: node.id, script: script.hash, grants: voided }, 'per-run approval no longer needed: voided');
  }

  /** Runs one verb (the stored text checked against its hash first). */
  private execute(script: ArtifactRecord, node: BackendNode, verb: ScriptVerb, request: ExecRequest, ctx: OperationContext): Promise<ProcessOutcome> {
    if (artifactHash(script.content) !== script.hash) {
      // The review and the trust are for the text with this hash; other text under its name was never
      // reviewed (state.db edited by hand or by something else). Not a trial: nothing ran.
      ctx.log.error({ node: node.id, script: script.hash, verb }, 'script text does not match its hash; refused');
      throw new FaultError(
        fault('permanent', `script ${shortHash(script.hash)}: the stored text does not match its hash, so it is not the script that was reviewed; it is not run`, {
          code: 'script-hash-mismatch',
          hint: 'find out who changed state.db; then reject the script: the generator\'s text is stored again on the next pass and awaits a fresh review',
        }),
      );
    }
    return this.client.run(script.hash, script.content, verb, request, ctx.signal);
  }

  /**
   * Writes one run to the ledger: a success (`counted`: whether it is a trial of the script; `note`
   * says why not) or a failure (counted for a create, update or delete). An aborted run is never a trial.
   */
  private record(
    script: ArtifactRecord,
    node: BackendNode,
    verb: ScriptVerb,
    outcome: ProcessOutcome,
    grantId: number | null,
    how: { readonly counted: boolean; readonly note?: string } | { readonly failure: string },
    ctx: OperationContext,
  ): void {
    const aborted = outcome.status === 'aborted';
    const failure = 'failure' in how ? how.failure : null;
    const result = aborted ? 'aborted' : failure === null ? 'success' : 'failure';
    const exitCode = outcome.status === 'exited' ? outcome.exitCode : null;
    this.ledger().recordRun({
      hash: script.hash,
      subject: node.id,
      action: verb,
      outcome: result,
      // Reads change nothing and run freely once reviewed: they must not earn trust for the changes.
      counted: !aborted && verb !== 'read' && ('failure' in how || how.counted),
      exitCode,
      detail: failure ?? ('note' in how ? (how.note ?? null) : null),
      durationMs: outcome.durationMs,
      grantId,
    });
    const fields = { node: node.id, script: script.hash, verb, outcome: result, status: outcome.status, exitCode, durationMs: outcome.durationMs };
    if (result === 'failure') ctx.log.warn({ ...fields, failure }, 'script run failed');
    else ctx.log.info(fields, 'script run');
  }
}

/** The outputs to record for what a create, update or delete printed (its output checked). */
function answered(intent: ProvisionIntent, stdout: string, recorded: Outputs | undefined): Outputs {
  switch (intent.verb) {
    case 'create':
      return parseApply('create', stdout);
    case 'update':
      return updatedOutputs(parseApply('update', stdout), recorded);
    case 'delete':
      checkDelete(stdout);
      return {};
    default:
      return assertNever(intent, 'provision intent');
  }
}

/**
 * The fault of a create, update or delete that exited 0, by what the script's read right after it
 * found (`seen`); undefined when that shows it done. A read that fails keeps its class (a timeout is
 * transient); one that finds it not done is `permanent` (`script-not-achieved`).
 */
function shortfallOf(h: string, verb: 'create' | 'update' | 'delete', seen: Observation, ignoreFields: readonly string[]): Fault | undefined {
  if (seen.status === 'failed') {
    const f = seen.fault;
    return fault(f.class, `script ${h}: ${verb} exited 0, but its read afterwards failed, so it did not show that it did it: ${f.message}`, { code: f.code, hint: f.hint });
  }
  const missed = unachieved(verb, seen, ignoreFields);
  if (missed === undefined) return undefined;
  return fault('permanent', `script ${h}: ${verb} exited 0 but did not do it: its read afterwards ${missed}`, {
    code: 'script-not-achieved',
    hint: `a run that does not do what it is asked counts against the script's trust; read it (desiredstate scripts show ${h}) and reject it for a new one`,
  });
}

/** What a read right after a create, update or delete found that falls short of it (words after "its read afterwards"); undefined when it shows it done. */
function unachieved(verb: 'create' | 'update' | 'delete', seen: Exclude<Observation, { status: 'failed' }>, ignoreFields: readonly string[]): string | undefined {
  if (verb === 'delete') return seen.status === 'absent' ? undefined : 'still finds the resource';
  switch (seen.status) {
    case 'upToDate':
      return undefined;
    case 'absent':
      return 'finds no resource';
    case 'drifted': {
      const diffs = withoutIgnored(seen.diffs, ignoreFields);
      if (diffs.length === 0) return undefined;
      return `still finds ${diffs.map((d) => `${d.path} ${excerpt(d.actual)}, not ${excerpt(d.desired)}`).join('; ')}`;
    }
    case 'indeterminate':
      return `cannot tell whether it exists (${seen.reason})`;
    default:
      return assertNever(seen, 'observation');
  }
}

/** An absolute path as `realpath -m` gives it (as the templates check it): the links of the part that exists resolved, the rest as written. */
async function realPathOf(path: string): Promise<string> {
  const rest: string[] = [];
  for (let head = path; ; head = dirname(head)) {
    try {
      return join(await realpath(head), ...rest);
    } catch {
      if (dirname(head) === head) return path;
      rest.unshift(basename(head));
    }
  }
}

/** A value as JSON, cut to a length a message can hold. */
function excerpt(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 79)}…` : text;
}

/** Compile-time checks: no `commands` (the script is generated), and a generator that can serve the kind and shape. */
function checkSpec(spec: Parameters<NonNullable<BackendFactory<ScriptConfig>['checkSpec']>>[0], config: ScriptConfig): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const input = inputOf(spec);
  if (spec.type === 'generic.resource' && spec.commands !== undefined) {
    issues.push({ path: ['commands'], message: 'a script backend generates its own script: remove commands (or use an exec backend)' });
  }
  // A script never sees secret values (it is reviewed as text, and its input arrives as written): a
  // reference would reach it as the literal map, and the resource be set to that.
  if (holdsSecretRef(input)) {
    issues.push({ path: spec.type === 'generic.resource' ? ['input'] : [], message: 'a script backend reads no secrets: a { fromEnv } or { fromFile } reference would reach the script as the map itself; use an exec backend for a resource that needs a secret' });
  }
  // Only the template generator can tell without running anything; and only from an input written out, not one
  // whole reference (its shape is the output's, known at run time, when the generator refuses it or not).
  if (isWholeReference(input)) return issues;
  const generator = generatorFrom(config.generator, { cwd: '.', env: {} });
  const why = generator.refuses({ kind: spec.type, shape: shapeOf(input) });
  if (why !== undefined) issues.push({ path: spec.type === 'generic.resource' ? ['input'] : [], message: why });
  return issues;
}

/** The `script` backend implementation: generated provisioning scripts that earn trust. */
export const scriptBackendFactory: BackendFactory<ScriptConfig> = {
  type: 'script',
  kinds: SCRIPT_KINDS,
  get configSchema() {
    return scriptConfigSchema();
  },
  checkSpec,
  // What checkSpec reads of the config: it still runs when another field of it has an error.
  configFields: ['generator'],
  outputs: Object.fromEntries(SCRIPT_KINDS.map((k) => [k, 'any'])),
  // A script is handed the node's id with the input, as an exec command is, and may key its resource on either:
  // two nodes of one kind and input may be one resource or two, so a removed one whose spec a node of the goals
  // has is let go, not deleted.
  identifiedBySpecAndId: true,
  description: 'Resources provisioned by generated scripts (built-in templates or any generator command), run only once reviewed and trusted.',
  // Where the scripts act; the generator, timeout, env and trust say how a script is made and run.
  identity: (config, { cwd }) => ({ root: resolve(cwd, config.root) }),
  create: (config, ctx) => resourceBackend(ctx.id, 'script', new ScriptProvisioner(config, ctx)),
};

