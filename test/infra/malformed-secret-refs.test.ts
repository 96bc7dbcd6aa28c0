import { describe, expect, it } from 'vitest';
import { holdsSecretRef, isSecretRef, malformedSecretRefs, referencedSecretPaths, specSchemas } from '../../src/infra/index.ts';

// A map meant as a secret reference that is not one ({ fromEnv: "lower case" }, both keys, an empty
// path) was sent to the command, or to the playbook, as plain data: the secret never read.
describe('maps meant as secret references that are not one', () => {
  it.each([
    { name: 'an env name with a space', value: { fromEnv: 'lower case' }, message: /^fromEnv names an environment variable .*not "lower case"/ },
    { name: 'both keys', value: { fromEnv: 'A', fromFile: '/x' }, message: /^a secret reference has one key, fromEnv or fromFile; this map has fromEnv, fromFile/ },
    { name: 'another key beside one', value: { fromFile: 'pw', mode: 'raw' }, message: /this map has fromFile, mode/ },
    { name: 'an empty path', value: { fromFile: '' }, message: /^fromFile is the path of the file holding the secret, not ""/ },
    { name: 'a number for a name', value: { fromEnv: 5 }, message: /not 5/ },
    { name: 'a key in lower case', value: { fromenv: 'PW' }, message: /^fromenv is no key of a secret reference \(did you mean fromEnv\?\)/ },
    { name: 'a key with an underscore', value: { from_file: '/etc/x' }, message: /^from_file is no key of a secret reference \(did you mean fromFile\?\)/ },
    { name: 'a key two edits away', value: { fromEnvv: 'PW' }, message: /\(did you mean fromEnv\?\)/ },
  ])('$name is an error at its path', ({ value, message }) => {
    const found = malformedSecretRefs({ deep: [{ v: value }] });
    expect(found).toEqual([{ path: ['deep', 0, 'v'], message: expect.stringMatching(message) }]);
  });

  it('valid references and plain data pass', () => {
    expect(malformedSecretRefs({ a: { fromEnv: 'DB_PASSWORD' }, b: [{ fromFile: 'secrets/pw' }], c: { name: 'x', env: 'fromEnv' } })).toEqual([]);
    // A key far from both, another beside a near one, or a value no name or path: data.
    expect(malformedSecretRefs({ a: { from: 'X' }, b: { fromenv: 'X', other: 1 }, c: { fromenv: { deep: 1 } }, d: { environment: 'X' } })).toEqual([]);
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

// An output would choose which file the daemon reads a secret from (the name in fromEnv: its pattern). Refused
// in the goal as written (test/fixtures/bad/secret-file-reference), never by a schema a resolved spec meets.
describe('a reference in the path of a secret reference', () => {
  it.each([
    { name: 'a path from a reference', value: { fromFile: '${nodes.p.outputs.path}' }, message: /^fromFile "\$\{nodes\.p\.outputs\.path\}" takes its path from a reference: a secret is read only where the goal names it/ },
    { name: 'a path with a reference in it', value: { fromFile: '/run/${ nodes.p.outputs.host }/pw' }, message: /takes its path from a reference/ },
  ])('$name is an error at the path', ({ value, message }) => {
    expect(referencedSecretPaths({ deep: [{ v: value }] })).toEqual([{ path: ['deep', 0, 'v', 'fromFile'], message: expect.stringMatching(message) }]);
  });

  it('a path with a literal ${ (written $${) is spelled out, and names and plain data hold none', () => {
    const written = { a: { fromFile: '/run/$${nodes.p.outputs.path}' }, b: { fromFile: '/run/$${HOME}/pw' }, c: { fromEnv: 'PW' }, d: '${nodes.p.outputs.path}' };
    expect(referencedSecretPaths(written)).toEqual([]);
    expect(malformedSecretRefs(written)).toEqual([]);
  });

  // Resolved, `/run/$${nodes.p.outputs.id}` is `/run/${nodes.p.outputs.id}`, a file's name: it was refused there as
  // `invalid-resolved-spec`, and read as data, not as a secret reference.
  it('resolved, a path holding a literal ${ is a secret reference the schemas take, in a role\'s password and an exec input', () => {
    const ref = { fromFile: '/run/${nodes.p.outputs.id}' };
    expect(isSecretRef(ref)).toBe(true);
    expect(holdsSecretRef({ input: { pw: ref } })).toBe(true);
    expect(specSchemas['postgres.role'].safeParse({ name: 'app', password: ref }).success).toBe(true);
    expect(specSchemas['generic.resource'].safeParse({ input: { deep: [ref] } }).success).toBe(true);
    expect(specSchemas['ansible.playbook'].safeParse({ playbook: 'site.yml', extraVars: { pw: ref } }).success).toBe(true);
  });
});
