import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { allowlistedEnv, execRequest, holdsSecretRef, processLeaseDir, resolveSecretRefs, resourceBackend, saltedDigestMatches, saltedSecretDigest, SECRET_MASK, SecretMask, updatedOutputs } from '../../infra/index.ts';
import type { BackendContext, BackendFactory, BackendHealth, BackendNode, InfraNodeSpec, InfraNodeSpecOf, ProvisionIntent, ResourceContext, ResourceProvisioner, SecretSource } from '../../infra/index.ts';
import { assertNever, errorMessage, fault, FaultError, isWholeReference, stableStringify } from '../../runtime/index.ts';
import type { FieldDiff, Observation, ObservationMemo, Outputs, ProvisionResult } from '../../runtime/index.ts';
import { ExecClient } from './client.ts';
import { execConfigSchema } from './config.ts';
import type { ExecConfig } from './config.ts';
import { checkDelete, parseApply, parseRead, successOutput, toObservation } from './observe.ts';
import type { ExecCommand } from './observe.ts';

export { execConfigSchema } from './config.ts';
export type { ExecConfig } from './config.ts';
export { inputDiffs, parseApply, parseRead, EX_NOPERM, EX_TEMPFAIL } from './observe.ts';

type GenericResourceSpec = InfraNodeSpecOf<'generic.resource'>;
type Commands = NonNullable<GenericResourceSpec['commands']>;
type ExecSpec = GenericResourceSpec & { readonly commands: Commands };

/**
 * `generic.resource` through user-supplied commands, speaking the exec
 * protocol of GOAL-FORMAT.md: JSON on stdin and stdout, argv without a
 * shell, an environment allowlist, a timeout and an output cap. A
 * `ResourceProvisioner`: `resourceBackend` gives it bounded-concurrency
 * observes, turns what it throws into `failed` values and masks them.
 */
export class ExecProvisioner implements ResourceProvisioner {
  readonly kinds = ['generic.resource'] as const;
  private readonly client: ExecClient;
  /** The allowlisted values a command may quote back (a token it was given): never in a fault or a reason. */
  readonly mask: SecretMask;
  /** Where secret references in the input are read from: the daemon's environment and working directory. */
  private readonly secretSource: SecretSource;
  /** Where the commands run. */
  private readonly cwd: string;

  constructor(config: ExecConfig, ctx: BackendContext) {
    const env = allowlistedEnv(ctx.env, config.env);
    this.mask = SecretMask.fromEnv(env);
    this.secretSource = { env: ctx.env, cwd: ctx.cwd };
    this.cwd = config.cwd === undefined ? ctx.cwd : resolve(ctx.cwd, config.cwd);
    this.client = new ExecClient({
      cwd: this.cwd,
      env,
      timeoutMs: config.timeout,
      maxOutputBytes: config.maxOutputBytes,
      leaseDir: processLeaseDir(ctx.stateDir),
    });
  }

  /** Healthy while the commands' working directory is one: without it no command of the backend can start. */
  async health(): Promise<BackendHealth> {
    try {
      if ((await stat(this.cwd)).isDirectory()) return { status: 'healthy' };
      return { status: 'unhealthy', message: `the backend cwd ${this.cwd} is not a directory` };
    } catch (err) {
      return { status: 'unhealthy', message: `the backend cwd ${this.cwd} cannot be used (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})` };
    }
  }

  async observe(node: BackendNode, ctx: ResourceContext): Promise<Observation> {
    const written = specOf(node);
    const spec = await this.resolved(written, ctx);
    const stdout = await this.run('read', spec.commands.read, node, spec, ctx);
    const obs = toObservation(spec.input, parseRead(stdout), ctx.outputsOf(node.id), node.settings.ignoreFields);
    const keys = secretKeys(written);
    return keys.length === 0 ? obs : withSecrets(obs, keys, spec.input, ctx.memoOf?.(node.id));
  }

  async provision(node: BackendNode, intent: ProvisionIntent, ctx: ResourceContext): Promise<ProvisionResult> {
    const written = specOf(node);
    const spec = await this.resolved(written, ctx);
    // What a create or update applies holds these secrets now: their digests tell a later rotation from a hand edit.
    const done = (outputs: Outputs): ProvisionResult => {
      const memo = secretDigests(secretKeys(written), spec.input);
      return memo === undefined ? { status: 'done', outputs } : { status: 'done', outputs, memo };
    };
    switch (intent.verb) {
      case 'create':
        return done(parseApply('create', await this.run('create', spec.commands.create, node, spec, ctx)));
      case 'update':
        if (spec.commands.update === undefined) {
          // Drift of such a node is only reported (`cannotUpdate`): this is a changed input, which
          // re-running create would apply by guessing at the script's semantics.
          throw new FaultError(
            fault('permanent', 'no update command: a changed input cannot be applied', { code: 'no-update-command', hint: 'add commands.update (or remove the resource and let create make it anew)' }),
          );
        }
        ctx.log.debug({ node: node.id, paths: intent.diffs.map((d) => d.path) }, 'exec update');
        return done(updatedOutputs(parseApply('update', await this.run('update', spec.commands.update, node, spec, ctx)), ctx.outputsOf(node.id)));
      case 'delete':
        if (spec.commands.delete === undefined) {
          throw new FaultError(fault('permanent', 'no delete command', { code: 'no-delete-command', hint: 'add commands.delete, or use deletionPolicy: Orphan' }));
        }
        checkDelete(await this.run('delete', spec.commands.delete, node, spec, ctx));
        return { status: 'done', outputs: {} };
      default:
        return assertNever(intent, 'provision intent');
    }
  }

  /**
   * The spec with every secret reference in its input (`{ fromEnv }`, `{ fromFile }`, at any depth)
   * replaced by the secret, read now, as an ansible extra var's: the command reads it on stdin, and
   * what it answers is masked. The input as written (references) is what is stored and shown.
   */
  private async resolved(spec: ExecSpec, ctx: ResourceContext): Promise<ExecSpec> {
    if (!holdsSecretRef(spec.input)) return spec;
    const input = (await resolveSecretRefs(spec.input, this.secretSource, ctx.addSecrets)) as ExecSpec['input'];
    return { ...spec, input };
  }

  /** Runs one protocol command; resolves with its stdout on exit 0, throws a `FaultError` otherwise. */
  private async run(command: ExecCommand, argv: readonly string[], node: BackendNode, spec: ExecSpec, ctx: ResourceContext): Promise<string> {
    const request = execRequest(node.id, spec.input, ctx);
    const outcome = await this.client.run(argv, command, request, ctx.signal);
    const exitCode = outcome.status === 'exited' ? outcome.exitCode : undefined;
    ctx.log.debug({ node: node.id, command, status: outcome.status, exitCode, durationMs: outcome.durationMs }, 'exec command finished');
    return successOutput(command, outcome);
  }
}

function specOf(node: BackendNode): ExecSpec {
  const spec = node.spec.spec;
  if (spec.type !== 'generic.resource') {
    throw new FaultError(fault('permanent', `the exec backend does not handle ${spec.type}`, { code: 'unsupported-type' }));
  }
  const commands = spec.commands;
  // checkSpec refuses this at compile time; a spec restored from the state store may predate that.
  if (commands === undefined) throw new FaultError(fault('permanent', 'the exec backend needs spec.commands', { code: 'no-commands' }));
  return { ...spec, commands };
}

/** Memo key prefix of the digest of a secret-holding input key's value as last applied (or found). */
const SECRET_DIGEST = 'secretDigest.';

/** The input keys whose value holds a secret reference (at any depth), as written. */
function secretKeys(spec: ExecSpec): string[] {
  return Object.keys(spec.input).filter((k) => holdsSecretRef(spec.input[k]));
}

/** A fresh digest of each secret key's value (secrets resolved), for the memo; undefined without any. */
function secretDigests(keys: readonly string[], input: ExecSpec['input']): ObservationMemo | undefined {
  if (keys.length === 0) return undefined;
  return Object.fromEntries(keys.map((k) => [SECRET_DIGEST + k, saltedSecretDigest(stableStringify(input[k]))]));
}

/**
 * An observation of a node whose input holds secrets (`input` resolved). A secret key's drift says
 * that it differs, never what either value is; where the value differs from the one whose digest
 * was recorded when it was last applied, the secret was rotated: a change of the desired input
 * (`cause`), not drift. The memo keeps, per key, the digest of the value the resource holds as far
 * as known: the recorded one while it differs, else (it holds the current value) a matching one.
 * With no digest recorded (a resource adopted, a record from before) a differing key is drift.
 */
function withSecrets(obs: Observation, keys: readonly string[], input: ExecSpec['input'], recorded: ObservationMemo | undefined): Observation {
  if (obs.status !== 'upToDate' && obs.status !== 'drifted') return obs;
  const differ = new Set(obs.status === 'drifted' ? obs.diffs.map((d) => d.path) : []);
  const memo: Record<string, string> = {};
  const rotated = new Set<string>();
  for (const k of keys) {
    const value = stableStringify(input[k]);
    const was = recorded?.[SECRET_DIGEST + k];
    const matches = saltedDigestMatches(was, value);
    if (!differ.has(`input.${k}`)) memo[SECRET_DIGEST + k] = matches ? was : saltedSecretDigest(value);
    else if (typeof was === 'string') {
      memo[SECRET_DIGEST + k] = was;
      if (!matches) rotated.add(`input.${k}`);
    }
  }
  const withMemo = Object.keys(memo).length === 0 ? obs : { ...obs, memo };
  if (withMemo.status !== 'drifted') return withMemo;
  const secret = new Set(keys.map((k) => `input.${k}`));
  const masked = (d: FieldDiff): FieldDiff => ({ path: d.path, desired: SECRET_MASK, actual: SECRET_MASK, masked: true, ...(rotated.has(d.path) ? { cause: 'secret-rotated' as const } : {}) });
  return { ...withMemo, diffs: withMemo.diffs.map((d) => (secret.has(d.path) ? masked(d) : d)) };
}

/**
 * Whether a node's commands, as its goal writes them, have no `command`. False where that is not
 * known at compile time: no commands (checkSpec's error), or one whole reference, whose value comes
 * at run time (a command it lacks is then that operation's own permanent fault).
 */
function lacks(spec: InfraNodeSpec, command: 'update' | 'delete'): boolean {
  return spec.type === 'generic.resource' && spec.commands !== undefined && !isWholeReference(spec.commands) && spec.commands[command] === undefined;
}

/** The `exec` backend implementation: `generic.resource` through user commands. */
export const execBackendFactory: BackendFactory<ExecConfig> = {
  type: 'exec',
  kinds: ['generic.resource'],
  get configSchema() {
    return execConfigSchema();
  },
  outputs: { 'generic.resource': 'any' },
  // What checkSpec and cannotDelete read: they still run when another field of the spec has an error.
  specFields: ['commands'],
  // Nor do they read the config: they still run when the Backend's config has errors.
  configFields: [],
  checkSpec: (spec) => (spec.type === 'generic.resource' && spec.commands === undefined ? [{ path: ['commands'], message: 'the exec backend needs commands (read and create at least)' }] : []),
  cannotUpdate: (spec) => (lacks(spec, 'update') ? 'no update command' : undefined),
  cannotDelete: (spec) => (lacks(spec, 'delete') ? 'it has no commands.delete (add one)' : undefined),
  // A command is handed the node's id with the input, and may key its resource on either: two nodes of one
  // spec may be one resource or two, so a removed one whose spec a node of the goals has is let go, not deleted.
  identifiedBySpecAndId: true,
  description: 'Resources managed by user-supplied read/create/update/delete commands speaking JSON (the exec protocol).',
  // Where the commands run, which their relative paths name things under; timeout, output limit and env say how.
  identity: (config, { cwd }) => ({ cwd: resolve(cwd, config.cwd ?? '.') }),
  create: (config, ctx) => resourceBackend(ctx.id, 'exec', new ExecProvisioner(config, ctx)),
};
