import { resolve } from 'node:path';
import { z } from 'zod';
import { durationSchema, once, parseDuration } from '../../runtime/index.ts';

/** How long an unchanged-looking file goes unread at most, unless `rereadEvery` says otherwise. */
export const DEFAULT_REREAD_EVERY = '1h';

/** `spec.config` of a Backend document with `type: local`. */
export const localConfigSchema = once(() =>
  z.strictObject({
    root: z.string().min(1).default('.desiredstate/local').describe('Directory every node path is relative to (itself relative to the working directory).'),
    rereadEvery: z
      .union([z.literal('always'), durationSchema], { error: 'expected "always" or a duration such as "30m" or "1h"' })
      .prefault(DEFAULT_REREAD_EVERY)
      .describe(
        'How long a file found exactly as last read (same device, inode, size, mtime and ctime, last changed well before that read) is taken to still hold what was read, without reading it again ("30m", "1h"); "always" reads every file on every observation.',
      ),
  }));

export type LocalConfig = z.output<ReturnType<typeof localConfigSchema>>;

/** The root directory, absolute: `root` resolved from the working directory. */
export function rootOf(config: Pick<LocalConfig, 'root'>, cwd: string): string {
  return resolve(cwd, config.root);
}

/** `rereadEvery` in milliseconds, the default when not given; undefined for `always`. */
export function rereadEveryMs(config: Pick<Partial<LocalConfig>, 'rereadEvery'>): number | undefined {
  const every = config.rereadEvery ?? parseDuration(DEFAULT_REREAD_EVERY)!;
  return every === 'always' ? undefined : every;
}

/** How many files observe reads at once. */
export const OBSERVE_PARALLELISM = 64;
