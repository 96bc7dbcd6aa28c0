import { describe, expect, it } from 'vitest';
import { malformedSecretRefs, specSchemas } from '../../src/infra/index.ts';

// A map meant as a secret reference that is not one ({ fromEnv: "lower case" }, both keys, an empty
// path) was sent to the command, or to the playbook, as plain data: the secret never read.
describe('maps meant as secret references that are not one', () => {
  it.each([
    { name: 'an env name with a space', value: { fromEnv: 'lower case' }, message: /^fromEnv names an environment variable .*not "lower case"/ },
    { name: 'both keys', value: { fromEnv: 'A', fromFile: '/x' }, message: /^a secret reference has one key, fromEnv or fromFile; this map has fromEnv, fromFile/ },
    { name: 'another key beside one', value: { fromFile: 'pw', mode: 'raw' }, message: /this map has fromFile, mode/ },
    { name: 'an empty path', value: { fromFile: '' }, message: /^fromFile is the path of the file holding the secret, not ""/ },
    { name: 'a number for a name', value: { fromEnv: 5 }, message: /not 5/ },
    // An output would choose which file the daemon reads a secret from (the name in fromEnv: its pattern).
    { name: 'a path from a reference', value: { fromFile: '${nodes.p.outputs.path}' }, message: /^fromFile "\$\{nodes\.p\.outputs\.path\}" takes its path from a reference: a secret is read only where the goal names it/ },
    { name: 'a path with a reference in it', value: { fromFile: '/run/${ nodes.p.outputs.host }/pw' }, message: /takes its path from a reference/ },
  ])('$name is an error at its path', ({ value, message }) => {
    const found = malformedSecretRefs({ deep: [{ v: value }] });
    expect(found).toEqual([{ path: ['deep', 0, 'v'], message: expect.stringMatching(message) }]);
  });

  it('valid references and plain data pass', () => {
    expect(malformedSecretRefs({ a: { fromEnv: 'DB_PASSWORD' }, b: [{ fromFile: 'secrets/pw' }], c: { name: 'x', env: 'fromEnv' } })).toEqual([]);
  });

  it('a path with a literal ${ (written $${) is spelled out', () => {
    expect(malformedSecretRefs({ a: { fromFile: '/run/$${nodes.p.outputs.path}' }, b: { fromFile: '/run/$${HOME}/pw' } })).toEqual([]);
  });

  it('a role\'s password names its file spelled out, as the postgres backend\'s does: refused at fromFile', () => {
    const role = specSchemas['postgres.role'].safeParse({ name: 'app', password: { fromFile: '/run/${nodes.p.outputs.id}' } });
    expect(role.error?.issues.map((i) => [i.path, i.message])).toEqual([
      [['password', 'fromFile'], expect.stringMatching(/^fromFile "\/run\/\$\{nodes\.p\.outputs\.id\}" takes its path from a reference/)],
    ]);
  });

  it('an exec input and an ansible extra var are refused by their schemas, each at the map', () => {
    const exec = specSchemas['generic.resource'].safeParse({ commands: { read: ['r'], create: ['c'] }, input: { pw: { fromEnv: 'lower case' } } });
    expect(exec.success).toBe(false);
    expect(exec.error?.issues.map((i) => i.path)).toEqual([['input', 'pw']]);
    const ansible = specSchemas['ansible.playbook'].safeParse({ playbook: 'site.yml', extraVars: { db: { password: { fromEnv: 'A', fromFile: 'b' } } } });
    expect(ansible.success).toBe(false);
    expect(ansible.error?.issues.map((i) => i.path)).toEqual([['extraVars', 'db', 'password']]);
  });
});
