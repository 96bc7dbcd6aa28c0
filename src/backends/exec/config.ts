import { z } from 'zod';
import { durationSchema } from '../../runtime/index.ts';

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

/** Backend `config` for `type: exec`. Strict: an unknown field is an error. */
export const execConfigSchema = z.strictObject({
  timeout: z
    .union([durationSchema, z.number().int().positive()])
    .default(60_000)
    .describe('Per command: a duration such as "30s", or milliseconds. The process group is killed when it expires.'),
  maxOutputBytes: z.number().int().positive().default(1024 * 1024).describe('Largest stdout accepted from a command.'),
  env: z
    .array(envName)
    .default(['PATH', 'HOME', 'LANG'])
    .describe("Names of the daemon's environment variables passed to commands; nothing else is."),
  cwd: z.string().min(1).optional().describe("Working directory of the commands (default: the daemon's)."),
});

export type ExecConfig = z.output<typeof execConfigSchema>;
