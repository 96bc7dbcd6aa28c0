import { requestLine, runProcess } from '../../infra/index.ts';
import type { ExecCommand, ExecRequest, ProcessOutcome } from '../../infra/index.ts';

/** Everything a command run needs besides the command itself. */
export interface ExecClientOptions {
  readonly cwd: string;
  /** The whole environment of the commands (already filtered by the allowlist). */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
  /** Where each command run is recorded while it runs (`processLeaseDir`), for the next start after a crash. */
  readonly leaseDir: string;
}

/** The exec backend's only I/O: runs one protocol command, argv only, never a shell. */
export class ExecClient {
  private readonly options: ExecClientOptions;

  constructor(options: ExecClientOptions) {
    this.options = options;
  }

  /** Runs `argv` with the request on stdin, as `command` of node `request.id`; never rejects. */
  run(argv: readonly string[], command: ExecCommand, request: ExecRequest, signal: AbortSignal): Promise<ProcessOutcome> {
    return runProcess({
      argv,
      cwd: this.options.cwd,
      env: this.options.env,
      stdin: requestLine(request),
      timeoutMs: this.options.timeoutMs,
      maxOutputBytes: this.options.maxOutputBytes,
      signal,
      lease: { dir: this.options.leaseDir, node: request.id, operation: command },
    });
  }
}
