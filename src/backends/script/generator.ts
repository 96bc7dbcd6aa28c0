import type { Logger } from 'pino';
import { runProcess, tailLines } from '../../infra/index.ts';
import type { InfraNodeType } from '../../infra/index.ts';
import { assertNever, fault, FaultError, sha256 } from '../../runtime/index.ts';
import type { GeneratorConfig } from './config.ts';
import type { Shape } from './shape.ts';
import { shapeKey } from './shape.ts';
import { describeTemplates, templateFor, TEMPLATE_KINDS } from './templates.ts';

/** What a generator is asked for: a script for one kind and input shape (never the values). */
export interface GenerationRequest {
  readonly kind: InfraNodeType;
  readonly shape: Shape;
}

/** A source of provisioning scripts. */
export interface ScriptGenerator {
  /** Stable id, stored as the script's origin: one generator never reuses another's scripts. */
  readonly id: string;
  /** Why it cannot serve (kind, shape), at compile time; undefined when it can (or cannot tell). */
  refuses(request: GenerationRequest): string | undefined;
  /** The script text, validated; throws a `FaultError` (codes `generator-*`) on any failure. */
  generate(request: GenerationRequest, ctx: { signal: AbortSignal; log: Logger }): Promise<string>;
}

/** The exec protocol, told to external generators with each request. */
export const PROTOCOL_INSTRUCTIONS = [
  'Print one executable script (starting with #!) and nothing else.',
  'It is run as `script VERB` with VERB one of read, create, update, delete, and receives on stdin',
  'one JSON object {"id": node id, "input": the node input (of the given shape), "outputs": recorded outputs or null}.',
  'read prints {"exists": false} or {"exists": true, "state": {...}, "outputs": {...}}; drift is every input key whose value differs in state.',
  'create and update print {"outputs": {...}} (any JSON values); delete prints nothing.',
  'Exit 0 on success, 75 for a transient failure, 77 for a permission failure, anything else for a permanent one; explain on stderr.',
  'Every call must be idempotent; the working directory is the backend root.',
  'Runs for several nodes overlap: a script that reads and writes back something other nodes change too (one file) must lock it itself (flock).',
].join(' ');

/** A generated script must be a non-empty executable text with an interpreter line, within the size limit. */
export function validateScript(text: string, maxBytes: number): string {
  const bytes = Buffer.byteLength(text, 'utf8');
  const bad = (why: string): FaultError =>
    new FaultError(fault('permanent', `the generator printed ${why}`, { code: 'generator-bad-output', hint: 'the generator must print only the script on stdout (logs go to stderr)' }));
  if (text.trim() === '') throw bad('no script');
  if (bytes > maxBytes) throw bad(`a script of ${bytes} bytes, more than the ${maxBytes} allowed`);
  if (text.includes('\0')) throw bad('a script containing NUL bytes');
  if (!text.startsWith('#!')) throw bad('a script without an interpreter line (#!)');
  return text;
}

/** The built-in table of POSIX sh templates. */
export const templateGenerator: ScriptGenerator = {
  id: 'template/v1',
  refuses({ kind, shape }) {
    if (!TEMPLATE_KINDS.includes(kind)) return `the built-in templates do not cover ${kind} (they cover ${TEMPLATE_KINDS.join(', ')}); configure a command generator`;
    if (templateFor(kind, shape) === undefined) return `no built-in template fits input ${shapeKey(shape)}; templates: ${describeTemplates(kind)}`;
    return undefined;
  },
  generate(request) {
    const why = this.refuses(request);
    const template = templateFor(request.kind, request.shape);
    if (why !== undefined || template === undefined) {
      return Promise.reject(new FaultError(fault('permanent', why ?? 'no template', { code: 'generator-no-template' })));
    }
    return Promise.resolve(template.script);
  },
};

/** Runs a user-configured program: request JSON on stdin, the script on stdout. */
export function commandGenerator(options: {
  readonly command: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly maxScriptBytes: number;
}): ScriptGenerator {
  const id = `command:${sha256(JSON.stringify(options.command)).slice(0, 12)}`;
  return {
    id,
    refuses: () => undefined,
    async generate(request, ctx) {
      const stdin = `${JSON.stringify({ kind: request.kind, shape: request.shape, protocol: 'desiredstate exec protocol v1', instructions: PROTOCOL_INSTRUCTIONS })}\n`;
      const outcome = await runProcess({
        argv: options.command,
        cwd: options.cwd,
        env: options.env,
        stdin,
        timeoutMs: options.timeoutMs,
        // One byte over the limit tells "too large" apart from "exactly at the limit".
        maxOutputBytes: options.maxScriptBytes + 1,
        signal: ctx.signal,
      });
      ctx.log.debug({ generator: id, kind: request.kind, status: outcome.status, durationMs: outcome.durationMs }, 'generator finished');
      switch (outcome.status) {
        case 'exited': {
          if (outcome.exitCode !== 0) {
            const tail = tailLines(outcome.stderr);
            throw new FaultError(
              fault('permanent', `the generator exited with status ${outcome.exitCode}${tail === '' ? '' : `: ${tail}`}`, { code: 'generator-failed', hint: `check the generator command ${JSON.stringify(options.command)}` }),
            );
          }
          return validateScript(outcome.stdout, options.maxScriptBytes);
        }
        case 'signaled':
          throw new FaultError(fault('permanent', `the generator was killed by ${outcome.signal}`, { code: 'generator-failed' }));
        case 'timedOut':
          throw new FaultError(fault('transient', `the generator timed out after ${outcome.timeoutMs} ms; its process group was killed`, { code: 'generator-timeout', hint: 'raise generator.timeout' }));
        case 'outputTooLarge':
          throw new FaultError(fault('permanent', `the generator printed more than ${options.maxScriptBytes} bytes`, { code: 'generator-bad-output', hint: 'raise generator.maxScriptBytes' }));
        case 'aborted':
          throw new FaultError(fault('transient', 'the generator was aborted', { code: 'aborted' }));
        case 'spawnFailed':
          throw new FaultError(fault('permanent', `the generator could not be started: ${outcome.message}`, { code: 'generator-failed', hint: 'check generator.command and that PATH is in the env allowlist' }));
        default:
          return assertNever(outcome, 'generator outcome');
      }
    },
  };
}

/** The generator a config names. */
export function generatorFrom(config: GeneratorConfig, ctx: { cwd: string; env: Readonly<Record<string, string>> }): ScriptGenerator {
  switch (config.type) {
    case 'template':
      return templateGenerator;
    case 'command':
      return commandGenerator({ command: config.command, cwd: ctx.cwd, env: ctx.env, timeoutMs: config.timeout, maxScriptBytes: config.maxScriptBytes });
    default:
      return assertNever(config, 'generator config');
  }
}
