import { z } from 'zod';
import { referencedSecretPaths, secretRefSchema } from '../../infra/index.ts';
import { durationOrMsSchema, once } from '../../runtime/index.ts';

/** A server-side timeout: a duration or milliseconds, or 0 (the server's own setting: nothing is sent). */
const serverTimeoutSchema = z.union([z.literal(0), durationOrMsSchema]);

export const SSL_MODES = ['disable', 'prefer', 'require', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** `spec.config` of a Backend document with `type: postgres`. Validated at load; nothing here connects. */
export const postgresConfigSchema = once(() =>
  z.strictObject({
    host: z.string().min(1).describe('Server host name or address, or the directory of its Unix socket (sslmode does not apply there, as in libpq).'),
    port: z.number().int().min(1).max(65_535).default(5432).describe('Server port (with a socket directory as host, it names the socket file .s.PGSQL.<port>, as in libpq).'),
    user: z.string().min(1).default('postgres').describe('The role the backend connects as (a superuser can also verify password drift).'),
    database: z.string().min(1).default('postgres').describe('The maintenance database: roles and databases are managed through it.'),
    password: secretRefSchema
      .optional()
      // A config is never resolved: judged only as written, a reference in the path is refused here.
      .superRefine((ref, ctx) => {
        for (const { path, message } of referencedSecretPaths(ref)) ctx.addIssue({ code: 'custom', path, message });
      })
      .describe('The connecting user\'s password, as a secret reference.'),
    sslmode: z
      .enum(SSL_MODES)
      .default('prefer')
      .describe('disable; prefer (TLS when offered, unverified); require (TLS, unverified); verify-full (TLS, certificate and host name verified).'),
    sslRootCert: z
      .string()
      .min(1)
      .optional()
      .describe(
        "With sslmode verify-full: a PEM file of the certificate authorities to trust instead of the system's (libpq's sslrootcert), relative to the working directory.",
      ),
    connectTimeout: durationOrMsSchema
      .default(5_000)
      .describe('How long to wait for a connection: a duration such as "5s", or milliseconds.'),
    lockTimeout: serverTimeoutSchema
      .default(10_000)
      .describe(
        "How long a statement waits for a lock another session holds (an open transaction that altered the role) before the server gives up on it: a transient fault, retried. A duration such as \"10s\", or milliseconds; 0 sends none (a pooler such as PgBouncer refuses it as a startup parameter unless told to ignore it).",
      ),
    statementTimeout: serverTimeoutSchema
      .default(600_000)
      .describe(
        'How long one statement may run before the server cancels it (a CREATE DATABASE copying a large template takes a while): a duration such as "10m", or milliseconds; 0 sends none (as lockTimeout). A server that has not answered 5 s past it (one that stopped answering, a proxy, the network) is given up by the backend too: a transient fault, on a new connection next time; with 0 only the operation\'s own end (a shutdown) stops the wait.',
      ),
    poolSize: z.number().int().min(1).max(100).default(5).describe('Connections per database pool.'),
    synchronousCommit: z
      .boolean()
      .default(false)
      .describe(
        'Wait for each change to be flushed to disk. Off by default: a change lost in a server crash is found absent by the next observe and made again.',
      ),
  }).superRefine((config, ctx) => {
    if (config.sslRootCert !== undefined && config.sslmode !== 'verify-full') {
      ctx.addIssue({ code: 'custom', path: ['sslRootCert'], message: `sslRootCert is only used with sslmode: verify-full (sslmode is ${config.sslmode})` });
    }
  }));

export type PostgresConfig = z.output<ReturnType<typeof postgresConfigSchema>>;
