import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { allowlistedEnv, holdsSecretRef, resolveSecretRefs, resourceBackend, SecretMask, tailLines } from '../../infra/index.ts';
import type { BackendContext, BackendFactory, BackendHealth, BackendNode, ProvisionIntent, ResourceContext, ResourceProvisioner, SecretSource } from '../../infra/index.ts';
import { assertNever, fault, FaultError, toFault } from '../../runtime/index.ts';
import type { Observation, OperationContext, Outputs, ProvisionResult } from '../../runtime/index.ts';
import { AnsibleClient } from './client.ts';
import type { AnsiblePlaybookSpec } from './client.ts';
import { ansibleConfigSchema } from './config.ts';
import type { AnsibleConfig } from './config.ts';
import { changesToDiffs, interpretRun, spawnFailedHint } from './observe.ts';
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
 * module's diff as detail); a task marked `check_mode: false` runs for real in
 * it, as Ansible has it (README says so: nothing here can tell). Create and update are real runs. Results are read
 * through the JSON stdout callback; extra vars are never templated. A
 * `ResourceProvisioner`: `resourceBackend` bounds the observes, turns what
 * it throws into `failed` values and masks them.
 */
export class AnsibleProvisioner implements ResourceProvisioner {
  readonly kinds = ['ansible.playbook'] as const;
  private readonly client: AnsibleClient;
  /** Allowlisted values a task may quote back (a token looked up with lookup('env')): never in a fault or a drift. */
  readonly mask: SecretMask;
  /** Where secret references in extra vars are read from: the daemon's environment and working directory. */
  private readonly secretSource: SecretSource;

  constructor(config: AnsibleConfig, ctx: BackendContext) {
    const env = allowlistedEnv(ctx.env, config.env);
    this.mask = SecretMask.fromEnv(env);
    this.secretSource = { env: ctx.env, cwd: ctx.cwd };
    this.client = new AnsibleClient({
      ansiblePlaybook: config.ansiblePlaybook,
      cwd: config.cwd === undefined ? ctx.cwd : resolve(ctx.cwd, config.cwd),
      env,
      timeoutMs: config.timeout,
      maxOutputBytes: config.maxOutputBytes,
      stdoutCallback: config.stdoutCallback,
      hostKeyChecking: config.hostKeyChecking,
      stateDir: ctx.stateDir,
    });
  }

  async observe(node: BackendNode, ctx: ResourceContext): Promise<Observation> {
    const written = specOf(node);
    // A playbook given secrets: its diffs are not shown. The values given now are masked in them, but
    // a file's old content in a diff holds the previous value of a rotated secret, which nothing masks.
    const diffs = holdsSecretRef(written.extraVars) ? 'hidden' : 'shown';
    const spec = await this.resolved(written, ctx);
    const recorded = ctx.outputsOf(node.id);
    // Task names are templated, so one may quote an extra var (a secret too): never logged unmasked.
    const tasks = (names: readonly string[]): string[] => names.map((name) => ctx.mask().text(name));
    try {
      const run = await this.run(spec, node, 'check', ctx);
      if (recorded !== undefined) {
        return run.changes.length === 0 ? { status: 'upToDate', outputs: recorded } : { status: 'drifted', diffs: changesToDiffs(run.changes, diffs), outputs: recorded };
      }
      // Never applied by us (no outputs recorded): a playbook has no "exists", what check mode sees is all there is.
      if (run.unsimulated.length > 0 && ctx.interrupted?.(node.id) === true) {
        // A run was begun and cut short (a crash, a timeout): it may have run these tasks, or all of the
        // playbook. Check mode cannot say, and running them again (a shell task, a migration) is not safe.
        return { status: 'indeterminate', reason: interruptedReason(`check mode cannot tell whether its tasks ${quoted(run.unsimulated)} (command, shell …) ran`) };
      }
      if (run.changes.length === 0 && run.unsimulated.length === 0) return { status: 'upToDate', outputs: run.outputs };
      if (run.changes.length === 0) {
        // Check mode skipped tasks it cannot simulate (command, shell …): nothing says they ever ran, so
        // this is no converged playbook to adopt. Once applied, they are what check mode cannot see.
        ctx.log.info({ node: node.id, tasks: tasks(run.unsimulated) }, 'playbook not yet applied: check mode cannot simulate some tasks');
        return { status: 'absent' };
      }
      // Not already converged: this is its absent. (After an interrupted run too: every task can be checked, so
      // the run that completes it is one Ansible makes idempotent.)
      ctx.log.info({ node: node.id, tasks: tasks(run.changes.map((c) => c.task)) }, 'playbook not yet applied');
      return { status: 'absent' };
    } catch (err) {
      const f = toFault(err);
      if (recorded === undefined && f.code === 'task-failed') {
        // Class and code only: the message may quote an extra-var secret, masked only in what the call returns.
        ctx.log.info({ node: node.id, class: f.class, code: f.code }, 'playbook check failed before first apply');
        // After a run cut short, a failing check says nothing of what that run did (nor of the tasks after the
        // one that fails, which check mode never reached): an operator looks.
        if (ctx.interrupted?.(node.id) === true) return { status: 'indeterminate', reason: interruptedReason(`its check fails (${f.message}), so what that run did is unknown`) };
        // Check mode cannot simulate a task that needs an earlier one's effect (a package before its
        // config file), so before the first apply a failing check means "not applied", not a fault;
        // the real run reports the failure if there is one.
        return { status: 'absent' };
      }
      return { status: 'failed', fault: f };
    }
  }

  async provision(node: BackendNode, intent: ProvisionIntent, ctx: ResourceContext): Promise<ProvisionResult> {
    switch (intent.verb) {
      case 'update':
      case 'create':
        return { status: 'done', outputs: await this.apply(node, intent, ctx) };
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
    if (outcome.status === 'spawnFailed') {
      // Said as the run's fault would say it (why, and what to do), not as the spawn's raw `ENOENT`.
      const where = await this.client.locate();
      const hint = spawnFailedHint(outcome.code);
      ctx.log.warn({ status: outcome.status, code: outcome.code }, 'ansible-playbook unavailable');
      return { status: 'unhealthy', message: `ansible-playbook cannot be run: ${'missing' in where ? where.missing : outcome.message}${hint === undefined ? '' : `; ${hint}`}` };
    }
    const message = outcome.status === 'exited' ? tailLines(outcome.stderr) : outcome.status;
    ctx.log.warn({ status: outcome.status }, 'ansible-playbook unavailable');
    return { status: 'unhealthy', message: message === '' ? 'ansible-playbook --version failed' : message };
  }

  /** A real run, for a create or for an update (with the diffs it corrects). */
  private async apply(node: BackendNode, intent: Exclude<ProvisionIntent, { verb: 'delete' }>, ctx: ResourceContext): Promise<Outputs> {
    const spec = await this.resolved(specOf(node), ctx);
    // The paths name tasks (`task:<name>`), which may quote a secret extra var.
    if (intent.verb === 'update') ctx.log.debug({ node: node.id, paths: intent.diffs.map((d) => ctx.mask().text(d.path)) }, 'ansible update');
    return (await this.run(spec, node, intent.verb, ctx)).outputs;
  }

  /**
   * The spec with every secret reference in its extra vars (`{ fromEnv }`, `{ fromFile }`, at any depth)
   * replaced by its value, read now (never at validate or compile time). The values are added to the
   * call's secrets, so that what the run answers, and what this logs (`ctx.mask`), hides them again.
   */
  private async resolved(spec: AnsiblePlaybookSpec, ctx: ResourceContext): Promise<AnsiblePlaybookSpec> {
    const extraVars = (await resolveSecretRefs(spec.extraVars, this.secretSource, ctx.addSecrets)) as AnsiblePlaybookSpec['extraVars'];
    return { ...spec, extraVars };
  }

  /** A check run (observe), or the real run of a create or an update. */
  private async run(spec: AnsiblePlaybookSpec, node: BackendNode, purpose: 'check' | 'create' | 'update', ctx: OperationContext): Promise<PlaybookRun> {
    const mode: RunMode = purpose === 'check' ? 'check' : 'apply';
    const outcome = await this.client.run(spec, mode, node.id, ctx.signal);
    const exitCode = outcome.status === 'exited' ? outcome.exitCode : undefined;
    ctx.log.debug({ node: node.id, mode, status: outcome.status, exitCode, durationMs: outcome.durationMs }, 'ansible-playbook finished');
    return interpretRun(outcome, { tags: spec.tags, create: purpose === 'create' });
  }
}

/** Why a playbook whose run was cut short is held (see `OperationContext.interrupted`). */
function interruptedReason(why: string): string {
  return `a run of the playbook was cut short (the daemon stopped or killed, or the run timed out), and ${why}; a retry runs the whole playbook again`;
}

function quoted(names: readonly string[]): string {
  return names.map((n) => JSON.stringify(n)).join(', ');
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
  get configSchema() {
    return ansibleConfigSchema();
  },
  // The play recap, as summaryOutputs makes it.
  outputs: { 'ansible.playbook': ['ok', 'changed', 'skipped', 'hosts'] },
  cannotDelete: () => 'a playbook run cannot be undone',
  driftNotByField: 'per changed task, never per field of the spec',
  // cannotDelete reads no field and no config: it still runs when the spec or the Backend's config has errors.
  specFields: [],
  configFields: [],
  description: 'Ansible playbooks run with ansible-playbook: check mode with diff to observe (at plan and every interval; a task marked check_mode: false runs for real then), a real run to apply.',
  // Where playbooks and inventories are found; the program, timeout, env, callback and limits say how they run.
  identity: (config, { cwd }) => ({ cwd: resolve(cwd, config.cwd ?? '.') }),
  create: (config, ctx) => resourceBackend(ctx.id, 'ansible', new AnsibleProvisioner(config, ctx), { concurrency: OBSERVE_CONCURRENCY }),
};
