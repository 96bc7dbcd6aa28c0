import { describe, expect, it } from 'vitest';
import { goalHead, localBackend } from '../../support/cli.ts';
import { compileText } from '../../support/compile.ts';

/**
 * A local node whose path lies inside a `local.directory` node's path (the
 * same backend) depends on the nearest such directory: compared in the
 * resource key's normal form, through no symlink node, and only where the
 * path is known before running.
 */

const goal = (nodes: string): string => `${localBackend('/tmp/ds-implied')}---\n${goalHead()}${nodes}`;

/** Each node's edges, as `id -> on (implicit|written)`. */
function edges(nodes: string): string[] {
  const r = compileText(goal(nodes));
  expect(r.lines).toEqual([]);
  return r.graph!.order.flatMap((n) => n.dependsOn.map((d) => `${n.id} -> ${d.on} (${d.implicit ? 'implicit' : 'written'})`));
}

describe('local backend: implied dependencies on directory nodes', () => {
  it('joins paths written apart (./a//b/, a/b) to the nearest directory, which depends on the next one up', () => {
    expect(
      edges(`    - { id: f, type: local.file, spec: { path: "./a//b/c/f.txt", content: x } }
    - { id: b, type: local.directory, spec: { path: "a/b/" } }
    - { id: a, type: local.directory, spec: { path: a } }
    - { id: top, type: local.file, spec: { path: a.txt, content: x } }
    - { id: aside, type: local.file, spec: { path: ab/c.txt, content: x } }
`),
    ).toEqual(['b -> a (implicit)', 'f -> b (implicit)']);
  });

  it('files and symlinks lie in directories; nothing lies "under" a symlink node, which the link resolves at run time', () => {
    expect(
      edges(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: link, type: local.symlink, spec: { path: d/link, target: elsewhere } }
    - { id: through, type: local.file, spec: { path: d/link/f.txt, content: x } }
`),
    ).toEqual(['link -> d (implicit)', 'through -> d (implicit)']);
  });

  it('a path a reference fills in takes no part: where it leads is known only once resolved', () => {
    expect(
      edges(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: name, type: local.file, spec: { path: name.txt, content: x } }
    - { id: named, type: local.file, spec: { path: "d/\${nodes.name.outputs.sha256}.txt", content: x } }
`),
    ).toEqual(['named -> name (implicit)']);
  });

  it('a written dependsOn on the directory is kept as the one edge', () => {
    expect(
      edges(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: f, type: local.file, dependsOn: [d], spec: { path: d/f.txt, content: x } }
`),
    ).toEqual(['f -> d (written)']);
  });
});
