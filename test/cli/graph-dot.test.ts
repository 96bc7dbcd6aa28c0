import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { dotEscape, dotString } from '../../src/cli/commands/goals.ts';
import { cli, localBackend, ONE_DIRECTORY_GOAL, tempProject } from '../support/cli.ts';

describe('graph --format dot', () => {
  const p = tempProject('ds-graph-dot-');
  p.write('backend.yaml', localBackend(p.root));
  // The one-directory goal, and a file in that directory.
  p.write('site.yaml', `${ONE_DIRECTORY_GOAL}    - id: index
      type: local.file
      dependsOn: [web-root]
      spec: { path: www/index.html, mode: "0644", content: "hi" }
`);
  afterAll(() => rmSync(p.dir, { recursive: true, force: true }));

  it('labels each node with its id and type on two lines (a DOT \\n escape, not a literal backslash)', async () => {
    const r = await cli(['graph', ...p.args], { cwd: p.dir });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')).toEqual(
      expect.arrayContaining([
        '  "web-root" [label="web-root\\nlocal.directory"];',
        '  "index" [label="index\\nlocal.file"];',
        '  "web-root" -> "index";',
      ]),
    );
  });

  it.each([
    { name: 'plain text is left alone', text: 'web-root', escaped: 'web-root' },
    { name: 'a double quote is escaped', text: 'say "hi"', escaped: 'say \\"hi\\"' },
    { name: 'a backslash is escaped (a trailing one cannot eat the closing quote)', text: 'a\\b\\', escaped: 'a\\\\b\\\\' },
    { name: 'a line break becomes the \\n escape', text: 'two\nlines\r\nthree', escaped: 'two\\nlines\\nthree' },
  ])('dotEscape: $name', ({ text, escaped }) => {
    expect(dotEscape(text)).toBe(escaped);
    expect(dotString(text)).toBe(`"${escaped}"`);
  });
});
