import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tempProject } from '../support/cli.ts';
import { startTestPostgres } from '../support/postgres.ts';
import type { TestPostgres } from '../support/postgres.ts';

/*
 * A server that asks for a password (scram-sha-256, as the test server's pg_hba.conf has it) and a
 * backend that cannot give one: its secret is not set, or its config names none. The command says so
 * and exits at once. The connection pg left open, half logged in, kept it waiting for the server's
 * authentication_timeout (60 s) before: each test's 30 s timeout is what fails then.
 */
let server: TestPostgres;
const p = tempProject('ds-pg-no-password-');

const backendDoc = (name: string, password: string): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ${name} }
spec:
  type: postgres
  config: { host: 127.0.0.1, port: ${server.port}, user: ${server.user}, sslmode: disable, connectTimeout: 5s${password} }
`;

beforeAll(async () => {
  server = await startTestPostgres();
  p.write('unset.yaml', backendDoc('pgunset', ', password: { fromEnv: NOPE_SECRET_ENV }'));
  p.write('none.yaml', backendDoc('pgnone', ''));
}, 120_000);

afterAll(async () => {
  await server?.destroy();
});

describe('a postgres backend that cannot give the password the server asks for', () => {
  it('backends: both unhealthy, saying why, and the command exits at once', async () => {
    const r = await cli(['backends', ...p.args]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const address = `127.0.0.1:${server.port}`;
    const health = (id: string): string | undefined => r.stdout.split('\n').find((l) => l.startsWith(`${id} `))?.replace(/ +/g, ' ');
    expect(health('pgunset')).toBe(`pgunset postgres unhealthy: the password for the PostgreSQL server at ${address} (config.password): secret environment variable NOPE_SECRET_ENV is not set`);
    expect(health('pgnone')).toBe(`pgnone postgres unhealthy: the PostgreSQL server at ${address} asks for a password for user "${server.user}", and the backend's config gives none`);
  }, 30_000);

  it('plan of a role: a permanent fault naming the secret, and the command exits at once', async () => {
    p.write('goal.yaml', `apiVersion: desiredstate/v1
kind: Goal
metadata: { name: g }
spec:
  nodes:
    - { id: r, type: postgres.role, backend: pgunset, spec: { name: app } }
`);
    const r = await cli(['plan', ...p.args]);
    expect(r.code, r.stdout + r.stderr).not.toBe(0);
    expect(r.stdout).toContain(
      `x r (postgres.role via pgunset) error (permanent): the password for the PostgreSQL server at 127.0.0.1:${server.port} (config.password): secret environment variable NOPE_SECRET_ENV is not set`,
    );
  }, 30_000);
});
