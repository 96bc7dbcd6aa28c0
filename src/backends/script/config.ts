import { z } from 'zod';
import { DEFAULT_TRUST_POLICY, envAllowlistSchema, trustPolicySchema } from '../../infra/index.ts';
import { durationOrMsSchema, once } from '../../runtime/index.ts';

const timeout = (ms: number, what: string) =>
  durationOrMsSchema
    .default(ms)
    .describe(`${what}: a duration such as "30s", or milliseconds. The process group is killed when it expires.`);

/** Where scripts come from: a union on `type`, one member per generator. */
export const generatorConfigSchema = once(() =>
  z.discriminatedUnion('type', [
    z.strictObject({
      type: z.literal('template').describe('The built-in templates (POSIX sh and jq).'),
    }),
    z.strictObject({
      type: z.literal('command').describe('Any program that reads the kind and spec shape as JSON on stdin and prints a script.'),
      command: z.array(z.string().min(1)).min(1).describe('argv of the generator, run without a shell in the daemon\'s working directory.'),
      timeout: timeout(120_000, 'How long the generator may take'),
      maxScriptBytes: z.number().int().positive().default(64 * 1024).describe('Largest script accepted from the generator.'),
    }),
  ]));

export type GeneratorConfig = z.output<ReturnType<typeof generatorConfigSchema>>;

/** Backend `config` for `type: script`. Strict: an unknown field is an error. */
export const scriptConfigSchema = once(() =>
  z.strictObject({
    root: z.string().min(1).describe('Working directory of the scripts (created if missing); the built-in templates keep every path under it.'),
    generator: generatorConfigSchema().default({ type: 'template' }).describe('Where scripts come from (default: the built-in templates).'),
    timeout: timeout(60_000, 'Per script run'),
    maxOutputBytes: z.number().int().positive().default(1024 * 1024).describe('Largest stdout accepted from a script.'),
    env: envAllowlistSchema('scripts and the generator'),
    trust: trustPolicySchema.default({ ...DEFAULT_TRUST_POLICY }).describe('When a reviewed script runs without a per-run approval.'),
    requireApprovalBelowTrust: z
      .array(z.string().min(1))
      .default(['prod'])
      .describe('Goal environments where a reviewed script below the trust bar needs `desiredstate scripts approve-run` for each create, update or delete.'),
  }));

export type ScriptConfig = z.output<ReturnType<typeof scriptConfigSchema>>;
