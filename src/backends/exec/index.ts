import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { allowlistedEnv, execRequest, holdsSecretRef, processLeaseDir, resolveSecretRefs, resourceBackend, SECRET_MASK, SecretMask, updatedOutputs } from '../../infra/index.ts';
import type { BackendContext, BackendFactory, BackendHealth, BackendNode, InfraNodeSpecOf, ProvisionIntent, ResourceContext, ResourceProvisioner, SecretSource } from '../../infra/index.ts';
import { assertNever, errorMessage, fault, FaultError } from '../../runtime/index.ts';
import type { Observation, Outputs, ProvisionResult } from '../../runtime/index.ts';
import { ExecClient } from './client.ts';
import { execConfigSchema } from './config.ts';
import type { ExecConfig } from './config.ts';
import { checkDelete, parseApply, parseRead, successOutput, toObservation } from './observe.ts';
import type { ExecCommand } from './observe.ts';

export { execConfigSchema } from './config.ts';
export type { ExecConfig } from './config.ts';
export { inputDiffs, jsonEqual, parseApply, parseRead, EX_NOPERM, EX_TEMPFAIL } from './observe.ts';

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
    const spec = await this.resolved(specOf(node), ctx);
    const stdout = await this.run('read', spec.commands.read, node, spec, ctx);
    const obs = toObservation(spec.input, parseRead(stdout), ctx.outputsOf(node.id));
    // A key of the input given a secret: its drift says that it differs, never what either value is.
    const secret = (path: string): boolean => holdsSecretRef(specOf(node).input[path.slice('input.'.length)]);
    if (obs.status !== 'drifted' || !obs.diffs.some((d) => secret(d.path))) return obs;
    return { ...obs, diffs: obs.diffs.map((d) => (secret(d.path) ? { path: d.path, desired: SECRET_MASK, actual: SECRET_MASK, masked: true } : d)) };
  }

  async provision(node: BackendNode, intent: ProvisionIntent, ctx: ResourceContext): Promise<ProvisionResult> {
    const spec = await this.resolved(specOf(node), ctx);
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
        return done({});
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

function done(outputs: Outputs): ProvisionResult {
  return { status: 'done', outputs };
}

/** The `exec` backend implementation: `generic.resource` through user commands. */
export const execBackendFactory: BackendFactory<ExecConfig> = {
  type: 'exec',
  kinds: ['generic.resource'],
  get configSchema() {
    return execConfigSchema();
  },
  outputs: { 'generic.resource': 'any' },
  checkSpec: (spec) => (spec.type === 'generic.resource' && spec.commands === undefined ? [{ path: ['commands'], message: 'the exec backend needs commands (read and create at least)' }] : []),
  cannotUpdate: (spec) => (spec.type === 'generic.resource' && spec.commands !== undefined && spec.commands.update === undefined ? 'no update command' : undefined),
  cannotDelete: (spec) => (spec.type === 'generic.resource' && spec.commands !== undefined && spec.commands.delete === undefined ? 'it has no commands.delete (add one)' : undefined),
  description: 'Resources managed by user-supplied read/create/update/delete commands speaking JSON (the exec protocol).',
  create: (config, ctx) => resourceBackend(ctx.id, 'exec', new ExecProvisioner(config, ctx)),
};
