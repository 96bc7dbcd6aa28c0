import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../src/backends/index.ts';
import { BackendRegistry } from '../../src/infra/index.ts';
import type { BackendFactory, OutputDeclarations } from '../../src/infra/index.ts';
import { DesiredStateError, ErrorCodes } from '../../src/runtime/index.ts';

/**
 * The registry fails at boot, with a coded error, on a factory it cannot
 * trust: a type registered twice, or output keys declared for a kind the
 * factory does not provision (a typo or a leftover, against which references
 * would be checked though no resource of that backend ever has them).
 */

function factory(type: string, outputs?: OutputDeclarations): BackendFactory {
  return {
    type,
    kinds: ['local.file', 'local.directory'],
    configSchema: z.object({}),
    ...(outputs === undefined ? {} : { outputs }),
    create() {
      throw new Error('never instantiated: the registry only reads the static half');
    },
    description: 'test backend',
  };
}

/** The code of what `build` throws, or undefined when it does not throw. */
function codeOf(build: () => unknown): string | undefined {
  try {
    build();
    return undefined;
  } catch (err) {
    return err instanceof DesiredStateError ? err.code : `not a DesiredStateError: ${String(err)}`;
  }
}

describe('BackendRegistry at construction', () => {
  it.each([
    { name: 'the built-in backends', factories: [...builtinBackendFactories], code: undefined },
    { name: 'no output declarations (any key is accepted)', factories: [factory('t')], code: undefined },
    { name: 'outputs for some of its kinds', factories: [factory('t', { 'local.file': ['path'] })], code: undefined },
    { name: 'outputs for every kind, one open-ended', factories: [factory('t', { 'local.file': ['path'], 'local.directory': 'any' })], code: undefined },
    { name: 'a type registered twice', factories: [factory('t'), factory('t')], code: ErrorCodes.DuplicateBackend },
    { name: 'outputs for a kind it does not provision', factories: [factory('t', { 'local.file': ['path'], 'local.symlink': ['path', 'target'] })], code: ErrorCodes.UnsupportedType },
    { name: 'outputs for a kind it does not provision, even open-ended', factories: [factory('t', { 'generic.resource': 'any' })], code: ErrorCodes.UnsupportedType },
  ])('$name: $code', ({ factories, code }) => {
    expect(codeOf(() => new BackendRegistry(factories))).toBe(code);
  });

  it('names the factory and the kind in the error context', () => {
    let err: unknown;
    try {
      new BackendRegistry([factory('t', { 'local.symlink': ['path'] })]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DesiredStateError);
    expect((err as DesiredStateError).context).toEqual({ type: 't', kind: 'local.symlink' });
  });
});
