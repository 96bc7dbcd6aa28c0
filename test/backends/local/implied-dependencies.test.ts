import { describe, expect, it } from 'vitest';
import { goalHead, localBackend } from '../../support/cli.ts';
import { compileText } from '../../support/compile.ts';

/**
 * A local node whose path lies inside a `local.directory` node's path (the
 * same backend) depends on the nearest such directory: compared in the
 * resource key's normal form, after the symlink nodes on the way (which it
 * depends on too), and only where the path is known before running.
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

  it('a path through a symlink node depends on the link, and lies in the directory the link leads to', () => {
    expect(
      edges(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: link, type: local.symlink, spec: { path: d/link, target: elsewhere } }
    - { id: through, type: local.file, spec: { path: d/link/f.txt, content: x } }
`),
    ).toEqual(['link -> d (implicit)', 'through -> link (implicit)', 'through -> d (implicit)']);
    // Declared first, the file still comes after the link (else its parent directory would take the link's place).
    expect(
      edges(`    - { id: conf, type: local.file, spec: { path: current/app.conf, content: x } }
    - { id: site, type: local.directory, spec: { path: site } }
    - { id: v2, type: local.directory, spec: { path: releases/v2 } }
    - { id: current, type: local.symlink, spec: { path: current, target: releases/v2 } }
`),
    ).toEqual(['conf -> current (implicit)', 'conf -> v2 (implicit)']);
  });

  it('follows links in chains, absolute targets inside the root, and the target relative to the link', () => {
    expect(
      edges(`    - { id: v2, type: local.directory, spec: { path: releases/v2 } }
    - { id: rel, type: local.symlink, spec: { path: releases/current, target: ./v2/ } }
    - { id: top, type: local.symlink, spec: { path: app, target: releases/current } }
    - { id: f, type: local.file, spec: { path: app/f.txt, content: x } }
    - { id: abs, type: local.symlink, spec: { path: abs, target: /tmp/ds-implied/releases/v2 } }
    - { id: g, type: local.file, spec: { path: abs/g.txt, content: x } }
`),
    ).toEqual(['f -> top (implicit)', 'f -> rel (implicit)', 'f -> v2 (implicit)', 'g -> abs (implicit)', 'g -> v2 (implicit)']);
  });

  it('leaves to the filesystem a target that climbs out through its directories (warned of), and one a reference fills in', () => {
    const r = compileText(
      goal(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: out, type: local.symlink, spec: { path: x/out, target: ../../elsewhere } }
    - { id: named, type: local.symlink, spec: { path: named, target: "\${nodes.d.outputs.path}" } }
    - { id: f1, type: local.file, spec: { path: x/out/f.txt, content: x } }
    - { id: f3, type: local.file, spec: { path: named/f.txt, content: x } }
`),
    );
    expect(r.lines).toEqual([expect.stringContaining('warning path-escapes-root: symlink target ../../elsewhere climbs out of the backend root from x')]);
    expect(r.graph!.order.flatMap((n) => n.dependsOn.map((dep) => `${n.id} -> ${dep.on}`))).toEqual(['named -> d']);
  });

  it('a path a reference fills in takes no part: where it leads is known only once resolved', () => {
    expect(
      edges(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: name, type: local.file, spec: { path: name.txt, content: x } }
    - { id: named, type: local.file, spec: { path: "d/\${nodes.name.outputs.sha256}.txt", content: x } }
`),
    ).toEqual(['named -> name (implicit)']);
  });

  // The directory's reference to a file inside it was a dependency cycle: f -> d -> f.
  it('a directory that references an output of a file inside it keeps that order, as before directories implied edges', () => {
    expect(
      edges(`    - { id: f, type: local.file, spec: { path: conf/a, content: x } }
    - { id: d, type: local.directory, spec: { path: conf, mode: "\${nodes.f.outputs.sha256}" } }
`),
    ).toEqual(['d -> f (implicit)']);
  });

  it('a written dependsOn on the directory is kept as the one edge', () => {
    expect(
      edges(`    - { id: d, type: local.directory, spec: { path: d } }
    - { id: f, type: local.file, dependsOn: [d], spec: { path: d/f.txt, content: x } }
`),
    ).toEqual(['f -> d (written)']);
  });
});

describe('local backend: nodes the others leave no way to make', () => {
  // validate passed them; apply made one, or made them all "successfully", and then failed on every pass.
  const cases = [
    {
      name: 'a file whose path is the directory of another node\'s',
      nodes: `    - { id: parent, type: local.file, spec: { path: x, content: "1" } }
    - { id: child, type: local.file, spec: { path: x/y, content: "2" } }
    - { id: deeper, type: local.directory, spec: { path: ./x/z/w } }
`,
      lines: [
        'goals/test.yaml:14:52: error path-conflict: node "child": its path x/y lies inside x, which node "parent" manages as a file: x would have to be a directory; one of them must go (node "parent": goals/test.yaml:13:53)',
        'goals/test.yaml:15:58: error path-conflict: node "deeper": its path x/z/w lies inside x, which node "parent" manages as a file: x would have to be a directory; one of them must go (node "parent": goals/test.yaml:13:53)',
      ],
    },
    {
      name: 'a path through a symlink node that leads to a file node',
      nodes: `    - { id: f, type: local.file, spec: { path: f, content: "1" } }
    - { id: cur, type: local.symlink, spec: { path: cur, target: f } }
    - { id: g, type: local.file, spec: { path: cur/g, content: "2" } }
`,
      lines: [
        'goals/test.yaml:15:48: error path-conflict: node "g": its path cur/g leads inside f, which node "f" manages as a file: f would have to be a directory; one of them must go (node "f": goals/test.yaml:13:48)',
      ],
    },
    {
      name: 'two links, each the other\'s target',
      nodes: `    - { id: a, type: local.symlink, spec: { path: a, target: b } }
    - { id: b, type: local.symlink, spec: { path: b, target: a } }
`,
      lines: [
        'goals/test.yaml:13:62: error symlink-loop: node "a": its target leads round a loop of symlinks back to it (nodes "a", "b"), which the kernel refuses to follow (ELOOP): nothing could be reached through it (node "b": goals/test.yaml:14:62)',
        'goals/test.yaml:14:62: error symlink-loop: node "b": its target leads round a loop of symlinks back to it (nodes "b", "a"), which the kernel refuses to follow (ELOOP): nothing could be reached through it (node "a": goals/test.yaml:13:62)',
      ],
    },
    {
      name: 'a link to itself, and one into the loop',
      nodes: `    - { id: l5, type: local.symlink, spec: { path: l5, target: ./l5 } }
    - { id: into, type: local.symlink, spec: { path: d/into, target: ../l5 } }
`,
      lines: [
        'goals/test.yaml:13:64: error symlink-loop: node "l5": its target leads round a loop of symlinks back to it (node "l5"), which the kernel refuses to follow (ELOOP): nothing could be reached through it',
        'goals/test.yaml:14:70: error symlink-loop: node "into": its target leads into a loop of symlinks (node "l5"), which the kernel refuses to follow (ELOOP): nothing could be reached through it (node "l5": goals/test.yaml:13:64)',
      ],
    },
    {
      name: 'two links, each leading through the other\'s directory',
      nodes: `    - { id: a, type: local.symlink, spec: { path: a, target: b/x } }
    - { id: b, type: local.symlink, spec: { path: b, target: a/y } }
`,
      lines: [
        'goals/test.yaml:13:62: error symlink-loop: node "a": its target leads round a loop of symlinks back to it (nodes "a", "b"), which the kernel refuses to follow (ELOOP): nothing could be reached through it (node "b": goals/test.yaml:14:62)',
        'goals/test.yaml:14:62: error symlink-loop: node "b": its target leads round a loop of symlinks back to it (nodes "b", "a"), which the kernel refuses to follow (ELOOP): nothing could be reached through it (node "a": goals/test.yaml:13:62)',
      ],
    },
  ];

  it.each(cases)('$name: a compile error at each node that cannot be made, naming the other', ({ nodes, lines }) => {
    expect(compileText(goal(nodes)).lines).toEqual(lines);
  });

  it('a path through a chain of links to a directory, or through a link whose target a reference fills in, is no conflict', () => {
    expect(
      edges(`    - { id: v2, type: local.directory, spec: { path: releases/v2 } }
    - { id: cur, type: local.symlink, spec: { path: current, target: releases/v2 } }
    - { id: app, type: local.symlink, spec: { path: app, target: current } }
    - { id: conf, type: local.file, spec: { path: app/app.conf, content: x } }
    - { id: out, type: local.symlink, spec: { path: out, target: "\${nodes.v2.outputs.path}" } }
    - { id: through, type: local.file, spec: { path: out/f, content: x } }
`),
    ).toEqual(['out -> v2 (implicit)', 'conf -> app (implicit)', 'conf -> cur (implicit)', 'conf -> v2 (implicit)']);
  });
});
