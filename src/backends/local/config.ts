import { z } from 'zod';

/** `spec.config` of a Backend document with `type: local`. */
export const localConfigSchema = z.strictObject({
  root: z.string().min(1).default('.desiredstate/local').describe('Directory every node path is relative to (itself relative to the working directory).'),
});

export type LocalConfig = z.output<typeof localConfigSchema>;

/** How many files observe reads at once. */
export const OBSERVE_PARALLELISM = 64;
