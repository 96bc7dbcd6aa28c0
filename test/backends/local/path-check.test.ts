import { isAbsolute, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtinBackendFactories } from '../../../src/backends/index.ts';
import { lexicalEscape, lexicalPath, PLAIN_PATH } from '../../../src/backends/local/paths.ts';
import { BackendRegistry, InfraSpecFactory } from '../../../src/infra/index.ts';
import { FaultError, formatDiagnostic, GoalCompiler, parseGoalText } from '../../../src/runtime/index.ts';

/**
 * A local node path that leaves the backend root is refused by every
 * operation (`path-escapes-root`); what the text alone shows is refused at
 * compile time too, with the same code and message, so that `validate`
 * catches it rather than a permanent fault at apply.
 */

describe('lexicalEscape: what a path shows by itself, whatever the root', () => {
  it.each([
    { path: 'a', why: undefined },
    { path: 'a/b/c.txt', why: undefined },
    { path: './a', why: undefined },
    { path: 'a/./b//c/', why: undefined },
    { path: 'a/b/../c', why: undefined },
    { path: '..a', why: undefined },
    { path: 'a/..b/...', why: undefined },
    { path: '/etc/passwd', why: 'absolute paths are not allowed' },
    { path: '/', why: 'absolute paths are not allowed' },
    { path: '.', why: 'it names the root itself' },
    { path: './', why: 'it names the root itself' },
    { path: 'a/..', why: 'it names the root itself' },
    { path: '..', why: '".." climbs out of the root' },
    { path: '../x', why: '".." climbs out of the root' },
    { path: 'a/../../x', why: '".." climbs out of the root' },
    { path: 'a/b/../../../x', why: '".." climbs out of the root' },
    // Back in only if the root's own name is `root`: the answer must not depend on where the root is.
    { path: '../root/x', why: '".." climbs out of the root' },
  ])('$path', ({ path, why }) => {
    expect(lexicalEscape(path)).toBe(why);
  });

  // The fast path of compile and of every operation: what it admits must need no normalising and stay inside.
  it.each([
    { path: 'a', plain: true },
    { path: 'a/b/c.txt', plain: true },
    { path: '..a', plain: true },
    { path: 'a/..b/...', plain: true },
    { path: '.hidden/x', plain: true },
    { path: './a', plain: false },
    { path: 'a//b', plain: false },
    { path: 'a/', plain: false },
    { path: 'a/./b', plain: false },
    { path: 'a/b/../c', plain: false },
    { path: '/etc/passwd', plain: false },
    { path: '.', plain: false },
    { path: '..', plain: false },
    { path: '../x', plain: false },
    { path: '', plain: false },
  ])('PLAIN_PATH: $path is plain: $plain', ({ path, plain }) => {
    expect(PLAIN_PATH.test(path)).toBe(plain);
    if (plain) {
      expect(normalize(path)).toBe(path);
      expect(isAbsolute(path)).toBe(false);
      expect(lexicalEscape(path)).toBeUndefined();
    }
  });

  it('is what the backend refuses, with its fault', () => {
    expect(lexicalPath('/srv/root', 'a/b/../c')).toBe('/srv/root/a/c');
    for (const path of ['/etc/x', '.', 'a/../../x', '../root/x']) {
      let fault: unknown;
      try {
        lexicalPath('/srv/root', path);
      } catch (err) {
        fault = err instanceof FaultError ? err.fault : err;
      }
      expect(fault, path).toMatchObject({ class: 'permanent', code: 'path-escapes-root', message: `path ${path} escapes the backend root: ${lexicalEscape(path)!}` });
    }
  });
});

const registry = new BackendRegistry(builtinBackendFactories);

/** A goal file of one Backend (its name and `spec`) and one Goal of `nodes`. */
const goalFile = (backend: string, backendSpec: string, nodes: string): string => `apiVersion: desiredstate/v1
kind: Backend
metadata: { name: ${backend} }
spec: ${backendSpec}
---
apiVersion: desiredstate/v1
kind: Goal
metadata: { name: app }
spec:
  nodes:
${nodes}`;

function validate(nodes: string): string[] {
  return diagnosticsOf(goalFile('mem', '{ type: memory }', nodes));
}

/** What `validate` prints for `goals/app.yaml` holding `text`. */
function diagnosticsOf(text: string): string[] {
  const parsed = parseGoalText('goals/app.yaml', text);
  return new GoalCompiler({ factory: new InfraSpecFactory({ registry }) }).compile(parsed.documents, parsed.diagnostics).diagnostics.map(formatDiagnostic);
}

describe('validate refuses a local path that leaves the root, at the path', () => {
  const node = (type: string, spec: string, extra = ''): string => `    - id: n\n      type: ${type}${extra}\n      spec: { ${spec} }\n`;
  it.each([
    { name: 'an absolute file path', nodes: node('local.file', 'path: /etc/cron.d/job, content: x'), why: 'path /etc/cron.d/job escapes the backend root: absolute paths are not allowed' },
    { name: 'a directory climbing out', nodes: node('local.directory', 'path: "a/../../srv"'), why: 'path a/../../srv escapes the backend root: ".." climbs out of the root' },
    { name: 'a symlink naming the root itself', nodes: node('local.symlink', 'path: "a/..", target: b'), why: 'path a/.. escapes the backend root: it names the root itself' },
    {
      name: 'a path made by ${goal.name}',
      nodes: node('local.file', 'path: "../${goal.name}/x", content: x'),
      why: 'path ../app/x escapes the backend root: ".." climbs out of the root',
    },
  ])('$name', ({ nodes, why }) => {
    expect(validate(nodes)).toEqual([`goals/app.yaml:13:21: error path-escapes-root: ${why} (backend "local", type local)`]);
  });

  it.each([
    { name: 'a path with .. that stays inside', nodes: node('local.file', 'path: "a/../b.txt", content: x') },
    { name: 'a symlink target that climbs out through its directories (only the filesystem can tell where they lead)', nodes: node('local.symlink', 'path: a/l, target: ../b') },
    { name: 'an absolute symlink target where the root is not known (relative, and no working directory)', nodes: node('local.symlink', 'path: l, target: /srv/app/current') },
    { name: 'a path that holds a reference (known once resolved)', nodes: `${node('local.directory', 'path: d')}    - id: f\n      type: local.file\n      spec: { path: "\${nodes.n.outputs.path}/../x", content: x }\n` },
    { name: 'an absolute path on a backend without a root', nodes: node('local.file', 'path: /etc/x, content: x', '\n      backend: mem') },
  ])('accepts $name', ({ nodes }) => {
    expect(validate(nodes)).toEqual([]);
  });
});

describe('validate and a symlink target that leaves the root', () => {
  const check = (link: string): string[] => diagnosticsOf(goalFile('local', '{ type: local, config: { root: /srv/app } }', `    - { id: l, type: local.symlink, spec: { ${link} } }\n`));
  const at = (col: number, severity: string, message: string): string => `goals/app.yaml:11:${col}: ${severity} path-escapes-root: ${message} (backend "local", type local)`;

  it('refuses an absolute target outside the root, and one that climbs out from a link in the root itself', () => {
    expect(check('path: l, target: /etc/passwd')).toEqual([at(62, 'error', 'path /etc/passwd escapes the backend root: the symlink target is outside the root')]);
    expect(check('path: l, target: /srv/application')).toEqual([at(62, 'error', 'path /srv/application escapes the backend root: the symlink target is outside the root')]);
    expect(check('path: l, target: ../../etc')).toEqual([at(62, 'error', 'path ../../etc escapes the backend root: the symlink target climbs out of the root')]);
  });

  it('warns of one that climbs out through the link\'s directories, which may be symlinks deeper into the root', () => {
    expect(check('path: a/b/l, target: ../../../x')).toEqual([
      at(66, 'warning', 'symlink target ../../../x climbs out of the backend root from a/b: refused when applied, unless a directory on the way is a symlink deeper into the root'),
    ]);
  });

  it('accepts targets inside the root, absolute or relative, and one known only at run time', () => {
    for (const link of ['path: l, target: /srv/app/releases/v2', 'path: l, target: releases/v2', 'path: a/b/l, target: ../../c', 'path: l, target: "${goal.name}"']) expect(check(link), link).toEqual([]);
  });
});
