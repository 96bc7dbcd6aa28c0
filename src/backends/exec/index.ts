import { resolve } from 'node:path';
import { allowlistedEnv } from '../../infra/index.ts';
import type { BackendContext, BackendFactory, BackendNode, InfraBackend, InfraNodeSpecOf } from '../../infra/index.ts';
import { fault, FaultError, mapLimit, toFault } from '../../runtime/index.ts';
import type { FieldDiff, NodeId, Observation, OperationContext, Outputs, ProvisionResult } from '../../runtime/index.ts';
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

/** How many read commands one observe pass runs at once. */
const OBSERVE_CONCURRENCY = 4;

/**
 * `generic.resource` through user-supplied commands, speaking the exec
 * protocol of GOAL-FORMAT.md: JSON on stdin and stdout, argv without a
 * shell, an environment allowlist, a timeout and an output cap.
 */
export class ExecBackend implements InfraBackend {
  readonly id: string;
  readonly type = 'exec';
  private readonly client: ExecClient;

  constructor(config: ExecConfig, ctx: BackendContext) {
    this.id = ctx.id;
    this.client = new ExecClient({
      cwd: config.cwd === undefined ? ctx.cwd : resolve(ctx.cwd, config.cwd),
      env: allowlistedEnv(ctx.env, config.env),
      timeoutMs: config.timeout,
      maxOutputBytes: config.maxOutputBytes,
    });
  }

  async observe(nodes: readonly BackendNode[], ctx: OperationContext): Promise<ReadonlyMap<NodeId, Observation>> {
    const observed = await mapLimit(nodes, OBSERVE_CONCURRENCY, (node) => this.observeOne(node, ctx));
    return new Map(nodes.map((node, i) => [node.id, observed[i]!]));
  }

  private async observeOne(node: BackendNode, ctx: OperationContext): Promise<Observation> {
    try {
      const spec = specOf(node);
      const stdout = await this.run('read', spec.commands.read, node, spec, ctx);
      return toObservation(spec.input, parseRead(stdout));
    } catch (err) {
      return { status: 'failed', fault: toFault(err) };
    }
  }

  create(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    return attempt(async () => {
      const spec = specOf(node);
      const stdout = await this.run('create', spec.commands.create, node, spec, ctx);
      return parseApply('create', stdout);
    });
  }

  update(node: BackendNode, diffs: readonly FieldDiff[], ctx: OperationContext): Promise<ProvisionResult> {
    return attempt(async () => {
      const spec = specOf(node);
      if (spec.commands.update === undefined) {
        // Re-running create to correct drift would guess at the script's semantics: report instead.
        throw new FaultError(
          fault('permanent', 'no update command: drift can only be reported', { code: 'no-update-command', hint: 'add commands.update, or set selfHeal: false' }),
        );
      }
      ctx.log.debug({ node: node.id, paths: diffs.map((d) => d.path) }, 'exec update');
      const stdout = await this.run('update', spec.commands.update, node, spec, ctx);
      return parseApply('update', stdout);
    });
  }

  delete(node: BackendNode, ctx: OperationContext): Promise<ProvisionResult> {
    return attempt(async () => {
      const spec = specOf(node);
      if (spec.commands.delete === undefined) {
        throw new FaultError(fault('permanent', 'no delete command', { code: 'no-delete-command', hint: 'add commands.delete, or use deletionPolicy: Orphan' }));
      }
      checkDelete(await this.run('delete', spec.commands.delete, node, spec, ctx));
      return {};
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Runs one protocol command; resolves with its stdout on exit 0, throws a `FaultError` otherwise. */
  private async run(command: ExecCommand, argv: readonly string[], node: BackendNode, spec: ExecSpec, ctx: OperationContext): Promise<string> {
    const request = { id: node.id, input: spec.input, outputs: ctx.outputsOf(node.id) ?? null };
    const outcome = await this.client.run(argv, request, ctx.signal);
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

/** Failure is a value: a thrown fault becomes a `failed` result. */
async function attempt(op: () => Promise<Outputs>): Promise<ProvisionResult> {
  try {
    return { status: 'done', outputs: await op() };
  } catch (err) {
    return { status: 'failed', fault: toFault(err) };
  }
}

/** The `exec` backend implementation: `generic.resource` through user commands. */
export const execBackendFactory: BackendFactory<ExecConfig> = {
  type: 'exec',
  kinds: ['generic.resource'],
  configSchema: execConfigSchema,
  checkSpec: (spec) => (spec.type === 'generic.resource' && spec.commands === undefined ? [{ path: ['commands'], message: 'the exec backend needs commands (read and create at least)' }] : []),
  description: 'Resources managed by user-supplied read/create/update/delete commands speaking JSON (the exec protocol).',
  create: (config, ctx) => new ExecBackend(config, ctx),
};
