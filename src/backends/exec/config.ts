import { z } from 'zod';
import { envAllowlistSchema } from '../../infra/index.ts';
import { durationOrMsSchema, once } from '../../runtime/index.ts';

/** Backend `config` for `type: exec`. Strict: an unknown field is an error. */
export const execConfigSchema = once(() =>
  z.strictObject({
    timeout: durationOrMsSchema
      .default(60_000)
      .describe('Per command: a duration such as "30s", or milliseconds. The process group is killed when it expires.'),
    maxOutputBytes: z.number().int().positive().default(1024 * 1024).describe('Largest stdout accepted from a command.'),
    env: envAllowlistSchema('commands'),
    cwd: z.string().min(1).optional().describe("Working directory of the commands (default: the daemon's)."),
  }));

export type ExecConfig = z.output<ReturnType<typeof execConfigSchema>>;
