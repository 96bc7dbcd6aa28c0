import { runProcess } from '../../infra/index.ts';
import type { ProcessOutcome } from '../../infra/index.ts';

/** Everything a command run needs besides the command itself. */
export interface ExecClientOptions {
  readonly cwd: string;
  /** The whole environment of the commands (already filtered by the allowlist). */
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxOutputBytes: number;
}

/** The JSON object every command receives on stdin. */
export interface ProtocolRequest {
  readonly id: string;
  readonly input: unknown;
  /** Outputs recorded at the last create/update, or null. */
  readonly outputs: unknown;
}

/** The exec backend's only I/O: runs one protocol command, argv only, never a shell. */
export class ExecClient {
  private readonly options: ExecClientOptions;

  constructor(options: ExecClientOptions) {
    this.options = options;
  }

  /** Runs `argv` with the request on stdin; never rejects. */
  run(argv: readonly string[], request: ProtocolRequest, signal: AbortSignal): Promise<ProcessOutcome> {
    return runProcess({
      argv,
      cwd: this.options.cwd,
      env: this.options.env,
      stdin: `${JSON.stringify(request)}\n`,
      timeoutMs: this.options.timeoutMs,
      maxOutputBytes: this.options.maxOutputBytes,
      signal,
    });
  }
}
