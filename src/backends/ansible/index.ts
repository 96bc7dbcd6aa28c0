import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { allowlistedEnv, resourceBackend, tailLines } from '../../infra/index.ts';
import type { BackendContext, BackendFactory, BackendHealth, BackendNode, ProvisionIntent, ResourceProvisioner } from '../../infra/index.ts';
import { assertNever, fault, FaultError, toFault } from '../../runtime/index.ts';
import type { Observation, OperationContext, Outputs, ProvisionResult } from '../../runtime/index.ts';
import { AnsibleClient } from './client.ts';
import type { AnsiblePlaybookSpec } from './client.ts';
import { ansibleConfigSchema } from './config.ts';
import type { AnsibleConfig } from './config.ts';
import { changesToDiffs, interpretRun } from './observe.ts';
import type { PlaybookRun, RunMode } from './observe.ts';

export { ansibleConfigSchema } from './config.ts';
export type { AnsibleConfig } from './config.ts';
export { changesToDiffs, interpretRun, lineDiff, parseReport, playbookArgs, taskChanges } from './observe.ts';
export type { PlaybookReport, TaskChange } from './observe.ts';
export { unsafeVarsYaml } from './vars.ts';

/** Playbook runs are heavy: how many check runs one observe pass makes at once. */
const OBSERVE_CONCURRENCY = 2;

/**
 * `ansible.playbook` through ansible-playbook. Observe is a `--check --diff`
 * run: tasks that would change something are drift (`task:<name>`, with the
 * module's diff as detail). Create and update are real runs. Results are read
 * through the JSON stdout callback; extra vars are never templated. A
 * `ResourceProvisioner`: `resourceBackend` bounds the observes and turns what
 * it throws into `failed` values.
 */
export class AnsibleProvisioner implements ResourceProvisioner {
  readonly kinds = ['ansible.playbook'] as const;
  private readonly client: AnsibleClient;

  constructor(config: AnsibleConfig, ctx: BackendContext) {
    this.client = new AnsibleClient({
      ansiblePlaybook: config.ansiblePlaybook,
      cwd: config.cwd === undefined ? ctx.cwd : resolve(ctx.cwd, config.cwd),
      env: allowlistedEnv(ctx.env, config.env),
      timeoutMs: config.timeout,
      maxOutputBytes: config.maxOutputBytes,
      stdoutCallback: config.stdoutCallback,
    });
  }

  async observe(node: BackendNode, ctx: OperationContext): Promise<Observation> {
    const recorded = ctx.outputsOf(node.id);
    try {
      const run = await this.run(node, 'check', ctx);
      if (run.changes.length === 0 && (recorded !== undefined || run.unsimulated.length === 0)) return { status: 'upToDate', outputs: recorded ?? run.outputs };
      if (recorded === undefined && run.changes.length === 0) {
        // Check mode skipped tasks it cannot simulate (command, shell …): nothing says they ever ran, so
        // this is no converged playbook to adopt. Once applied, they are what check mode cannot see.
        ctx.log.info({ node: node.id, tasks: run.unsimulated }, 'playbook not yet applied: check mode cannot simulate some tasks');
        return { status: 'absent' };
      }
      if (recorded === undefined) {
        // Never applied by us and not already converged: a playbook has no "exists", so this is its absent.
        ctx.log.info({ node: node.id, tasks: run.changes.map((c) => c.task) }, 'playbook not yet applied');
        return { status: 'absent' };
      }
      return { status: 'drifted', diffs: changesToDiffs(run.changes), outputs: recorded };
    } catch (err) {
      const f = toFault(err);
      if (recorded === undefined && f.code === 'task-failed') {
        // Check mode cannot simulate a task that needs an earlier one's effect (a package before its
        // config file), so before the first apply a failing check means "not applied", not a fault;
        // the real run reports the failure if there is one.
        ctx.log.info({ node: node.id, fault: f }, 'playbook check failed before first apply');
        return { status: 'absent' };
      }
      return { status: 'failed', fault: f };
    }
  }

  async provision(node: BackendNode, intent: ProvisionIntent, ctx: OperationContext): Promise<ProvisionResult> {
    switch (intent.verb) {
      case 'update':
        ctx.log.debug({ node: node.id, paths: intent.diffs.map((d) => d.path) }, 'ansible update');
        return { status: 'done', outputs: (await this.run(node, 'apply', ctx)).outputs satisfies Outputs };
      case 'create':
        return { status: 'done', outputs: (await this.run(node, 'apply', ctx)).outputs satisfies Outputs };
      case 'delete':
        // A playbook run cannot be undone; there is nothing to delete.
        throw new FaultError(
          fault('permanent', 'a playbook cannot be un-run; remove the node with deletionPolicy: Orphan', {
            code: 'not-deletable',
            hint: 'set deletionPolicy: Orphan on the node (or write a playbook that removes what this one made, as its own node)',
          }),
        );
      default:
        return assertNever(intent, 'provision intent');
    }
  }

  async health(ctx: { signal: AbortSignal; log: Logger }): Promise<BackendHealth> {
    const outcome = await this.client.version(ctx.signal);
    if (outcome.status === 'exited' && outcome.exitCode === 0) return { status: 'healthy' };
    const message = outcome.status === 'spawnFailed' ? outcome.message : outcome.status === 'exited' ? tailLines(outcome.stderr) : outcome.status;
    ctx.log.warn({ status: outcome.status }, 'ansible-playbook unavailable');
    return { status: 'unhealthy', message: message === '' ? 'ansible-playbook --version failed' : message };
  }

  private async run(node: BackendNode, mode: RunMode, ctx: OperationContext): Promise<PlaybookRun> {
    const spec = specOf(node);
    const outcome = await this.client.run(spec, mode, ctx.signal);
    const exitCode = outcome.status === 'exited' ? outcome.exitCode : undefined;
    ctx.log.debug({ node: node.id, mode, status: outcome.status, exitCode, durationMs: outcome.durationMs }, 'ansible-playbook finished');
    return interpretRun(outcome);
  }
}

function specOf(node: BackendNode): AnsiblePlaybookSpec {
  const spec = node.spec.spec;
  if (spec.type !== 'ansible.playbook') {
    throw new FaultError(fault('permanent', `the ansible backend does not handle ${spec.type}`, { code: 'unsupported-type' }));
  }
  return spec;
}

/** The `ansible` backend implementation: `ansible.playbook` through ansible-playbook. */
export const ansibleBackendFactory: BackendFactory<AnsibleConfig> = {
  type: 'ansible',
  kinds: ['ansible.playbook'],
  configSchema: ansibleConfigSchema,
  // The play recap, as summaryOutputs makes it.
  outputs: { 'ansible.playbook': ['ok', 'changed', 'skipped', 'hosts'] },
  description: 'Ansible playbooks run with ansible-playbook: check mode with diff to observe, a real run to apply.',
  create: (config, ctx) => resourceBackend(ctx.id, 'ansible', new AnsibleProvisioner(config, ctx), { concurrency: OBSERVE_CONCURRENCY }),
};
