import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { DesiredStateError, ErrorCodes } from '../runtime/index.ts';

/** A bad invocation: exit 64 with a one-line reason. */
export class UsageError extends DesiredStateError {
  constructor(message: string) {
    super(ErrorCodes.Usage, message);
  }
}

export const EXIT = { ok: 0, failed: 1, changes: 2, usage: 64 } as const;

type Options = NonNullable<ParseArgsConfig['options']>;

/** Flags every command takes. */
export const commonOptions = {
  goals: { type: 'string' },
  state: { type: 'string' },
  format: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export function parse<O extends Options>(argv: readonly string[], options: O, allowPositionals = 0) {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...commonOptions, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.split('\n')[0]! : String(err));
  }
  if (parsed.positionals.length > allowPositionals) {
    throw new UsageError(`unexpected argument "${parsed.positionals[allowPositionals]}"`);
  }
  return parsed;
}

export function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} must be one of ${allowed.join(', ')} (got "${value}")`);
  return value as T;
}
