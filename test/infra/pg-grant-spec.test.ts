import { describe, expect, it } from 'vitest';
import { specSchemas } from '../../src/infra/index.ts';

// GRANT ALL, USAGE is a syntax error to PostgreSQL: validate and plan said nothing, and apply failed
// on every pass.
describe('postgres.grant privileges', () => {
  const grant = (privileges: string[]) => specSchemas['postgres.grant'].safeParse({ role: 'r', database: 'd', schema: 'public', on: 'schema', privileges });

  it.each([
    { name: 'ALL with another', privileges: ['ALL', 'USAGE'], at: 0 },
    { name: 'ALL PRIVILEGES after another', privileges: ['usage', 'all privileges'], at: 1 },
  ])('$name is refused at ALL', ({ privileges, at }) => {
    const r = grant(privileges);
    expect(r.success).toBe(false);
    expect(r.error?.issues).toEqual([expect.objectContaining({ path: ['privileges', at], message: 'ALL is every privilege on schema: list it alone, or list the privileges without it' })]);
  });

  it.each([['ALL'], ['ALL PRIVILEGES'], ['USAGE', 'CREATE']])('%s alone is accepted', (...privileges) => {
    expect(grant(privileges).success).toBe(true);
  });
});
