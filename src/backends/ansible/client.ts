import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { carriedTokens, LEASE_TOKEN_PATTERN, leaseToken, locateProgram, processLeaseDir, runProcess } from '../../infra/index.ts';
import type { InfraNodeSpecOf, ProcessOutcome } from '../../infra/index.ts';
import { isAlive } from '../../runtime/index.ts';
import { playbookArgs } from './observe.ts';
import type { RunMode } from './observe.ts';
import { unsafeVarsYaml } from './vars.ts';

export type AnsiblePlaybookSpec = InfraNodeSpecOf<'ansible.playbook'>;

export interface AnsibleClientOptions {
  readonly ansiblePlaybook: string;
  readonly cwd: string;
  /** The allowlisted part of the environment; the ANSIBLE_* settings are added per run. */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  readonly stdoutCallback: string;
  /** SSH host key checking forced on or off; undefined leaves it to Ansible (see `hostKeyCheckingEnv`). */
  readonly hostKeyChecking?: boolean | undefined;
  /** The state directory: each run is recorded under it while it runs (`processLeaseDir`), for the next start after a crash. */
  readonly stateDir: string;
}

/** Every variable Ansible reads host key checking from; the ssh and paramiko plugins read their own names last, so those win. */
const HOST_KEY_CHECKING_VARS = ['ANSIBLE_HOST_KEY_CHECKING', 'ANSIBLE_SSH_HOST_KEY_CHECKING', 'ANSIBLE_PARAMIKO_HOST_KEY_CHECKING'] as const;

/**
 * The variables that force host key checking on or off, under each of its names (one left as the operator
 * set it would outvote the others). Unset: none, so Ansible's own setting holds (an allowlisted variable,
 * ansible.cfg, else on): a daemon playing unattended against remote hosts accepts any host key only when an
 * operator has said so.
 */
function hostKeyCheckingEnv(setting: boolean | undefined): Record<string, string> {
  if (setting === undefined) return {};
  return Object.fromEntries(HOST_KEY_CHECKING_VARS.map((name) => [name, String(setting)]));
}

/**
 * A run's temp dir is named for the process that made it and for the run's lease token: one left by a
 * process now gone is told apart, and is still in use while its playbook runs on (the process was killed
 * -9, not its run, which goes on in its own process group and carries the token).
 */
const RUN_DIR_PREFIX = `desiredstate-ansible-`;
const RUN_DIR_OF = new RegExp(String.raw`^${RUN_DIR_PREFIX}(\d+)-(?:(${LEASE_TOKEN_PATTERN})-)?`);


/**
 * The ansible backend's only I/O: one ansible-playbook run in a private
 * temp dir (extra vars file, Ansible's local and remote temp), removed
 * afterwards whatever happened; and, before the first run, the dirs of runs
 * whose process was killed before it could remove them (before later runs
 * too, while one was kept for a run that went on without its process).
 */
export class AnsibleClient {
  private readonly options: AnsibleClientOptions;
  /** The last sweep: how many dirs it kept for runs that go on. */
  private swept: Promise<number> | undefined;

  constructor(options: AnsibleClientOptions) {
    this.options = options;
  }

  /** Runs the playbook for node `node` (`check`: with --check --diff); never rejects for the run's own failures. */
  async run(spec: AnsiblePlaybookSpec, mode: RunMode, node: string, signal: AbortSignal): Promise<ProcessOutcome> {
    // Once; then again while a dir was kept for a run going on: its end, or its successor's kill at its
    // timeout, leaves the dir, secrets included, to be removed.
    if (this.swept === undefined || (await this.swept) > 0) this.swept = sweepRunDirs();
    await this.swept;
    const token = leaseToken();
    // mkdtemp creates the directory 0700: the vars file and Ansible's temp files stay private.
    const dir = await mkdtemp(join(tmpdir(), `${RUN_DIR_PREFIX}${process.pid}-${token}-`));
    try {
      let varsFile: string | undefined;
      if (Object.keys(spec.extraVars).length > 0) {
        varsFile = join(dir, 'extra-vars.yml');
        await writeFile(varsFile, unsafeVarsYaml(spec.extraVars), { mode: 0o600, flag: 'wx' });
      }
      await mkdir(join(dir, 'local'), { mode: 0o700 });
      await mkdir(join(dir, 'tmp'), { mode: 0o700 });
      const args = playbookArgs({ ...spec, playbook: resolve(this.options.cwd, spec.playbook), varsFile, mode });
      return await runProcess({
        argv: [this.options.ansiblePlaybook, ...args],
        cwd: this.options.cwd,
        // Python's own temp files too (a local module's AnsiballZ payload): a run killed at its timeout
        // cannot clean up after itself, and would leave them in /tmp for good.
        env: { ...this.runEnv(dir), TMPDIR: join(dir, 'tmp') },
        timeoutMs: this.options.timeoutMs,
        maxOutputBytes: this.options.maxOutputBytes,
        signal,
        // Two runs against the same hosts at once (one left by a daemon killed -9, one of its successor)
        // are what the lease prevents.
        lease: { dir: processLeaseDir(this.options.stateDir), node, operation: mode, token },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** `ansible-playbook --version`, for health checks. */
  version(signal: AbortSignal): Promise<ProcessOutcome> {
    return runProcess({ argv: [this.options.ansiblePlaybook, '--version'], cwd: this.options.cwd, env: this.runEnv(tmpdir()), timeoutMs: 30_000, maxOutputBytes: 64 * 1024, signal });
  }

  /** Where runs find ansible-playbook, or why they cannot: looked for, never run. */
  locate(): ReturnType<typeof locateProgram> {
    return locateProgram(this.options.ansiblePlaybook, { cwd: this.options.cwd, env: this.options.env });
  }

  private runEnv(dir: string): Record<string, string> {
    return {
      ...this.options.env,
      ...hostKeyCheckingEnv(this.options.hostKeyChecking),
      ANSIBLE_STDOUT_CALLBACK: this.options.stdoutCallback,
      ANSIBLE_JSON_INDENT: '0',
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_FORCE_COLOR: '0',
      ANSIBLE_RETRY_FILES_ENABLED: 'false',
      // An inventory given that cannot be parsed (a typo in its path) is an error, not a warning followed by
      // a run against the implicit localhost, the daemon's own machine.
      ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: 'true',
      ANSIBLE_LOCAL_TEMP: join(dir, 'local'),
      ANSIBLE_REMOTE_TEMP: join(dir, 'remote'),
      // Python writes UTF-8 whatever the daemon's locale.
      PYTHONIOENCODING: 'utf-8',
    };
  }
}

/**
 * Removes the run dirs left by processes that are gone: a daemon killed -9 (or by the OOM killer) during a
 * run never reached its cleanup, and its dir keeps the extra-vars file, secrets included, for good. Not
 * while the run itself goes on without it (its Ansible temp files are there): another daemon's first run,
 * or a test's beside it, would pull them from under the playbook, which its successor waits for to finish.
 */
async function sweepRunDirs(): Promise<number> {
  const root = tmpdir();
  const names = await readdir(root).catch(() => [] as string[]);
  const left = names.flatMap((name) => {
    const [, pid, token] = RUN_DIR_OF.exec(name) ?? [];
    // Alive, or another user's: its dirs are not ours to remove.
    return pid === undefined || isAlive(Number(pid)) ? [] : [{ name, token }];
  });
  // The process table read once, and only when some dir was left by a run that may go on.
  const goingOn = left.some((d) => d.token !== undefined) ? carriedTokens() : new Set<string>();
  const kept = left.filter((d) => d.token !== undefined && goingOn.has(d.token));
  await Promise.all(
    left
      .filter((d) => !kept.includes(d))
      // Best effort: a dir another user owns (sticky /tmp) stays where it is.
      .map((d) => rm(join(root, d.name), { recursive: true, force: true }).catch(() => undefined)),
  );
  return kept.length;
}
