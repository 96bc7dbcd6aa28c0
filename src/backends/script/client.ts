import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requestLine, runProcess } from '../../infra/index.ts';
import type { ExecRequest, ProcessOutcome } from '../../infra/index.ts';
import { artifactHash, fault, FaultError, makeDirectories, replaceFile } from '../../runtime/index.ts';
import type { ScriptVerb } from './gate.ts';

/** Where scripts are kept and how they run. */
export interface ScriptClientOptions {
  readonly scriptDir: string;
  /** The scripts' working directory. */
  readonly root: string;
  /** The whole environment of the scripts (already filtered by the allowlist). */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  /** Where each run is recorded while it runs (`processLeaseDir`), for the next start after a crash. */
  readonly leaseDir: string;
}

/**
 * The script backend's only I/O besides the ledger: writes a script to a
 * file named by its hash (checked before every run, so a hand-edited file is
 * replaced, never run) and runs it with the verb as its one argument.
 */
export class ScriptClient {
  private readonly options: ScriptClientOptions;

  constructor(options: ScriptClientOptions) {
    this.options = options;
  }

  /** The path of the script's file, written if missing or different. */
  materialize(hash: string, content: string): string {
    const path = join(this.options.scriptDir, hash);
    let current: string | undefined;
    try {
      current = readFileSync(path, 'utf8');
    } catch {
      current = undefined;
    }
    if (current === undefined || artifactHash(current) !== hash) {
      makeDirectories(this.options.scriptDir, 0o700);
      replaceFile(path, (tmp) => writeFileSync(tmp, content, { mode: 0o700 }));
    }
    chmodSync(path, 0o700);
    return path;
  }

  /**
   * Runs one verb; rejects only when its working directory cannot be made (`makeRoot`). Leased as exec commands are: a create left running by a daemon
   * killed -9 is waited for (or killed at its timeout) by the next `run` or `apply` before the node is
   * observed, never observed absent and started again beside itself.
   */
  run(hash: string, content: string, verb: ScriptVerb, request: ExecRequest, signal: AbortSignal): Promise<ProcessOutcome> {
    const path = this.materialize(hash, content);
    this.makeRoot();
    return runProcess({
      argv: [path, verb],
      cwd: this.options.root,
      env: this.options.env,
      stdin: requestLine(request),
      timeoutMs: this.options.timeoutMs,
      maxOutputBytes: this.options.maxOutputBytes,
      signal,
      lease: { dir: this.options.leaseDir, node: request.id, operation: verb },
    });
  }

  /** The scripts' working directory, made if missing; one that cannot be (a file there, no permission) is said as the config's, never an `unknown` mkdir error. */
  private makeRoot(): void {
    const { root } = this.options;
    try {
      makeDirectories(root);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new FaultError(
        fault(code === 'EACCES' || code === 'EPERM' ? 'auth' : 'permanent', `the scripts' working directory ${root} (config.root) cannot be made: ${code ?? String(err)}`, {
          ...(code === undefined ? {} : { code }),
          hint: 'set config.root to a directory the daemon may write in, or to a path where one can be made (a file or a missing permission on the way is in the way)',
        }),
        { cause: err },
      );
    }
  }
}
