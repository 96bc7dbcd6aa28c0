import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { DesiredStateError, ErrorCodes } from '../runtime/index.ts';
import { commonOptions } from './command-line.ts';

/** A bad invocation: exit 64 with a one-line reason. */
export class UsageError extends DesiredStateError {
  constructor(message: string) {
    super(ErrorCodes.Usage, message);
  }
}

/** Exit statuses: `interrupted` is 128 + SIGINT, as a shell reports a command Ctrl-C stopped; `terminated`, 128 + SIGTERM. */
export const EXIT = { ok: 0, failed: 1, changes: 2, usage: 64, interrupted: 130, terminated: 143 } as const;

/**
 * Rethrows a system error whose code is one of `reasons` (a failure that is
 * the invocation's: exit 64) as a UsageError `${doing}: ${reason}`, and any
 * other error as it is.
 */
export function rethrowAsUsage(err: unknown, doing: string, reasons: Readonly<Record<string, string>>): never {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === undefined ? undefined : reasons[code];
  if (why === undefined) throw err;
  throw new UsageError(`${doing}: ${why}`);
}

type Options = NonNullable<ParseArgsConfig['options']>;

export function parse<O extends Options>(argv: readonly string[], options: O, allowPositionals = 0) {
  const all = { ...commonOptions, ...options };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: all, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw new UsageError(argumentProblem(argv, all) ?? (err instanceof Error ? err.message.split('\n')[0]! : String(err)));
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[allowPositionals]}"`);
  }
  // Every option takes one value: parsing alone keeps the last, dropping the others unsaid (`drift --node a --node b`).
  const given = new Map<string, string>();
  for (const t of parsed.tokens) {
    if (t.kind !== 'option' || t.value === undefined) continue;
    const first = given.get(t.name);
    // The same value twice says nothing twice; two values, one of which would be dropped, are refused.
    if (first !== undefined && first !== t.value) throw new UsageError(`--${t.name} is given more than once ("${first}", then "${t.value}"): it takes one value`);
    given.set(t.name, t.value);
  }
  return parsed;
}

/** Most workers `--concurrency` may ask for: beyond this a pool only piles up open connections and files. */
export const MAX_CONCURRENCY = 1000;

/**
 * A count flag (`--concurrency N`, `--limit N`): decimal digits only (Number() would take `0x10`,
 * `1e20`, blanks), 1 to `max`; `fallback` when the flag is absent.
 */
export function parseCount(flag: string, value: string | undefined, max: number, fallback: number): number;
export function parseCount(flag: string, value: string | undefined, max: number, fallback?: number): number | undefined;
export function parseCount(flag: string, value: string | undefined, max: number, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = /^[0-9]{1,7}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n >= 1 && n <= max)) throw new UsageError(`--${flag} takes a whole number from 1 to ${max} (got "${value}")`);
  return n;
}

export function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}

/**
 * The one-line reason for arguments strict parsing refused, found from the tokens of a lenient parse
 * (Node's own messages run on over several sentences, with a quote left open): undefined when it
 * is none of these.
 */
function argumentProblem(argv: readonly string[], options: Options): string | undefined {
  let tokens;
  try {
    tokens = parseArgs({ args: [...argv], options, allowPositionals: true, strict: false, tokens: true }).tokens;
  } catch {
    return undefined;
  }
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const option = Object.hasOwn(options, t.name) ? options[t.name] : undefined;
    if (option === undefined) return `unknown option ${t.rawName}`;
    // Strict parsing takes no value starting with "-" unless it is written --flag=VALUE.
    if (option.type === 'string' && (t.value === undefined || (t.inlineValue === false && t.value.startsWith('-')))) {
      // `--since -1h`, for "an hour ago": --since=-1h is refused, as --since counts back from now already.
      if (t.name === 'since' && t.value !== undefined && /^-\d/.test(t.value)) return `${t.rawName} needs a value; it counts back from now: write ${t.rawName} ${t.value.slice(1)}`;
      // `--interval -5s`: a value was given, in a form strict parsing takes for a flag (`--goals --all` is not one).
      return t.value !== undefined && /^-[\d.]/.test(t.value) ? `${t.rawName} needs a value; for one starting with "-", write ${t.rawName}=${t.value}` : `${t.rawName} needs a value`;
    }
    if (option.type === 'boolean' && t.value !== undefined) return `${t.rawName} takes no value`;
  }
  return undefined;
}
