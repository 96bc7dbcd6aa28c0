import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Scalar, stringify } from 'yaml';
import { decodeUtf8, sortDiagnostics, defaultLoadLimits, loadGoalDirectory, nestingGuard, parseGoalText, scalarOffset, walkGoalTree } from '../../src/runtime/index.ts';

describe('parseGoalText: line endings', () => {
  const goal = ['apiVersion: desiredstate/v1', 'kind: Goal', 'metadata: { name: app }', 'spec:', '  nodes:', '    - id: a', '      type: local.file', '      spec: { path: a, content: "x" }', ''];

  it('reads CRLF files with the positions LF ones have', () => {
    const lf = parseGoalText('f.yaml', goal.join('\n'));
    const crlf = parseGoalText('f.yaml', goal.join('\r\n'));
    expect(crlf.diagnostics).toEqual([]);
    expect(crlf.documents.map((d) => d.value)).toEqual(lf.documents.map((d) => d.value));
    expect(crlf.documents[0]!.locate(['spec', 'nodes', 0, 'spec', 'content'])).toEqual(lf.documents[0]!.locate(['spec', 'nodes', 0, 'spec', 'content']));
  });

  // Classic Mac line endings (CR alone) gave a screenful of "Nested mappings are not allowed in
  // compact mappings", all on line 1. One error says what is wrong.
  it('refuses CR-only line endings with one error at the first', () => {
    const { documents, diagnostics } = parseGoalText('f.yaml', goal.join('\r'));
    expect(documents).toEqual([]);
    expect(diagnostics).toEqual([
      { file: 'f.yaml', line: 1, col: 28, severity: 'error', code: 'line-endings', message: 'a carriage return (CR) without a line feed: save the file with LF (or CRLF) line endings' },
    ]);
  });
});

describe('parseGoalText', () => {
  it('reads several documents from one file, each locating its own values', () => {
    const text = 'a: 1\nb:\n  c: [x, y]\n---\n# second\nd: "q"\n';
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(diagnostics).toEqual([]);
    expect(documents.map((d) => [d.index, d.value])).toEqual([
      [0, { a: 1, b: { c: ['x', 'y'] } }],
      [1, { d: 'q' }],
    ]);
    expect(documents[0]!.locate(['b', 'c', 1])).toEqual({ file: 'f.yaml', line: 3, col: 10 });
    expect(documents[0]!.locate(['b', 'c'], 'key')).toEqual({ file: 'f.yaml', line: 3, col: 3 });
    // An absent path points at its nearest existing ancestor.
    expect(documents[0]!.locate(['b', 'nope'])).toEqual({ file: 'f.yaml', line: 3, col: 3 });
    expect(documents[1]!.locate(['d'])).toEqual({ file: 'f.yaml', line: 6, col: 4 });
  });

  // The parser reads an unclosed quote on to the end of the file, past the `---` that ends its document.
  it('reads the documents after one with an unclosed quote, each locating its own values', () => {
    const text = "a: 1\n---\nb: 'x\n---\nc: [x, y]\n---\n# fourth\nd: \"q\"\n";
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.code}`)).toEqual(['3:4 yaml-syntax']);
    expect(documents.map((d) => [d.index, d.value])).toEqual([
      [0, { a: 1 }],
      [2, { c: ['x', 'y'] }],
      [3, { d: 'q' }],
    ]);
    expect(documents[1]!.locate(['c', 1])).toEqual({ file: 'f.yaml', line: 5, col: 8 });
    expect(documents[2]!.locate(['d'], 'key')).toEqual({ file: 'f.yaml', line: 8, col: 1 });
  });

  it.each([
    { name: 'YAML 1.2: NO is a string', text: 'a: NO\n', value: { a: 'NO' } },
    { name: 'YAML 1.2: 0644 is the decimal 644', text: 'a: 0644\n', value: { a: 644 } },
    { name: 'YAML 1.2: 0o644 is octal', text: 'a: 0o644\n', value: { a: 420 } },
    { name: 'a stray trailing --- is harmless', text: 'a: 1\n---\n', value: { a: 1 } },
    { name: 'a leading --- is harmless', text: '---\na: 1\n', value: { a: 1 } },
    { name: 'a byte-order mark is not content', text: 'a: 1\n', value: { a: 1 } },
    { name: 'a verbatim core tag is allowed', text: 'a: !<tag:yaml.org,2002:str> 1\n', value: { a: '1' } },
    { name: 'a few aliases are allowed', text: 'a: &x [1, 2]\nb: *x\n', value: { a: [1, 2], b: [1, 2] } },
    { name: 'brackets inside quotes are not nesting', text: `a: "${'['.repeat(100)}"\nb: 'it''s [[['\n`, value: { a: '['.repeat(100), b: "it's [[[" } },
    { name: 'brackets inside a block scalar are not nesting', text: `a: |\n  ${'['.repeat(100)}\nb: 1\n`, value: { a: `${'['.repeat(100)}\n`, b: 1 } },
  ])('$name', ({ text, value }) => {
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(diagnostics).toEqual([]);
    expect(documents[0]?.value).toEqual(value);
  });

  it.each([
    { name: 'empty text', text: '', code: 'empty-file', at: '1:1' },
    { name: 'whitespace only', text: '  \n\n', code: 'empty-file', at: '1:1' },
    { name: 'comments only', text: '# nothing\n', code: 'empty-file', at: '1:1' },
    { name: 'separators only', text: '---\n---\n', code: 'empty-file', at: '1:1' },
    { name: 'a map as a key', text: '? {a: 1}\n: 2\n', code: 'complex-key', at: '1:3' },
    { name: 'a syntax error', text: 'a: [1, 2\nb: 3\n', code: 'yaml-syntax', at: '' },
    { name: 'nesting just past the limit, precisely located', text: `a: ${'['.repeat(65)}${']'.repeat(65)}\n`, code: 'too-deep', at: '1:68' },
  ])('refuses $name', ({ text, code, at }) => {
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(documents).toEqual([]);
    expect(diagnostics.map((d) => d.code)).toContain(code);
    const d = diagnostics.find((x) => x.code === code)!;
    if (at !== '') expect(`${d.line}:${d.col}`).toBe(at);
  });

  it.each([
    { name: 'a python tag', text: 'a: !!python/object/apply:os.system ["ls"]\n', at: '1:4', value: { a: ['ls'] } },
    { name: 'a local tag', text: 'a:\n  - !foo bar\n', at: '2:5', value: { a: ['bar'] } },
    { name: 'a YAML 1.1 timestamp tag', text: 'a: !!timestamp 2001-12-14\n', at: '1:4', value: { a: '2001-12-14' } },
    { name: 'a tag on a key', text: '!foo a: 1\n', at: '1:1', value: { a: 1 } },
  ])('$name is an error at the tag, yet the document is kept (read as if untagged) so that its other problems are reported too', ({ text, at, value }) => {
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(diagnostics).toEqual([expect.objectContaining({ code: 'custom-tag', severity: 'error' })]);
    expect(`${diagnostics[0]!.line}:${diagnostics[0]!.col}`).toBe(at);
    expect(documents.map((d) => d.value)).toEqual([value]);
  });

  it.each([
    // Its value merged as YAML 1.1 would: no error for a field the merge brings.
    { name: 'a merge key', text: 'a: &x {b: 1, e: 3}\nc:\n  <<: *x\n  e: 4\n  d: !t x\n', value: { a: { b: 1, e: 3 }, c: { b: 1, e: 4, d: 'x' } } },
    { name: 'a merge key that cannot be merged', text: 'c:\n  <<: 5\n  d: !t x\n', value: { c: { d: 'x' } } },
  ])('$name is an error at the key, yet the document is kept so that its other problems are reported too', ({ text, value }) => {
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    const lines = text.split('\n');
    const line = (s: string): number => lines.findIndex((l) => l.includes(s)) + 1;
    expect(sortDiagnostics(diagnostics).map((d) => [d.code, `${d.line}:${d.col}`])).toEqual([
      ['merge-key', `${line('<<')}:3`],
      ['custom-tag', `${line('!t')}:6`],
    ]);
    expect(documents.map((d) => d.value)).toEqual([value]);
  });

  it('a merge key\'s own value is checked too: a forbidden key in it is an error, and not merged back', () => {
    const { documents, diagnostics } = parseGoalText('f.yaml', 'a: &x { __proto__: { x: 1 }, b: 2 }\nc:\n  <<: *x\n  d: 1\n');
    expect(sortDiagnostics(diagnostics).map((d) => d.code)).toEqual(['forbidden-key', 'merge-key']);
    expect(documents.map((d) => d.value)).toEqual([{ a: { b: 2 }, c: { d: 1 } }]);
    expect(Object.getPrototypeOf((documents[0]!.value as { a: object }).a)).toBe(Object.prototype);
  });

  // The whole document was refused: its other problems went unsaid until the key was renamed.
  it.each([
    { name: 'a __proto__ key', text: 'a:\n  __proto__: {x: 1}\n  b: !t 1\n', at: '2:3', value: { a: { b: '1' } } },
    { name: 'a constructor key', text: 'constructor: 1\nb: !t 1\n', at: '1:1', value: { b: '1' } },
    { name: 'a prototype key, in a flow map in a list', text: 'l:\n  - { prototype: 1, b: !t 1 }\n', at: '2:7', value: { l: [{ b: '1' }] } },
  ])('$name is an error at the key that says why, taken out of the document, whose other problems are reported too', ({ text, at, value }) => {
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(sortDiagnostics(diagnostics).map((d) => [d.code, `${d.line}:${d.col}`])).toEqual([['forbidden-key', at], ['custom-tag', expect.any(String)]]);
    expect(diagnostics.find((d) => d.code === 'forbidden-key')!.message).toMatch(/^key "(__proto__|constructor|prototype)" is not allowed: __proto__, constructor and prototype name a JavaScript object's own machinery, which goal data must never reach; use another name$/);
    expect(documents.map((d) => d.value)).toEqual([value]);
    expect(Object.getPrototypeOf(documents[0]!.value)).toBe(Object.prototype);
  });

  it('every custom tag of a document is reported, each once', () => {
    const { diagnostics } = parseGoalText('f.yaml', 'a: !x 1\nb:\n  c: !y 2\n  d: [!z 3]\n');
    expect(sortDiagnostics(diagnostics).map((d) => [d.code, `${d.line}:${d.col}`, d.message])).toEqual([
      ['custom-tag', '1:4', 'custom tag !x is not allowed in goal files'],
      ['custom-tag', '3:6', 'custom tag !y is not allowed in goal files'],
      ['custom-tag', '4:7', 'custom tag !z is not allowed in goal files'],
    ]);
  });

  it('a duplicate key is an error, yet the document is kept (its later value taken) so that its other problems are reported too', () => {
    const { documents, diagnostics } = parseGoalText('f.yaml', 'a: 1\nb: 2\na: 3\n');
    expect(diagnostics).toEqual([expect.objectContaining({ code: 'duplicate-key', severity: 'error', line: 3, col: 1 })]);
    expect(documents.map((d) => d.value)).toEqual([{ a: 3, b: 2 }]);
    // Located where the value taken is.
    expect(documents[0]!.locate(['a'])).toMatchObject({ line: 3, col: 4 });
  });

  // A quoted key is the same key as a plain one: named as read, not with its quotes and escapes.
  it.each([
    { name: 'plain', text: 'path: a\npath: b\n', key: '"path"' },
    { name: 'double-quoted', text: 'path: a\n"path": b\n', key: '"path"' },
    { name: 'with an escape', text: 'path: a\n"\\u0070ath": b\n', key: '"path"' },
    { name: 'single-quoted, in a flow map', text: "a: { \"it's\": 1, 'it''s': 2 }\n", key: '"it\'s"' },
    { name: 'explicit', text: 'a: 1\n? a\n: 2\n', key: '"a"' },
  ])('names a duplicate key as read: $name', ({ text, key }) => {
    expect(parseGoalText('f.yaml', text).diagnostics.map((d) => d.message)).toEqual([`duplicate key ${key}: each key may appear once in a map`]);
  });

  it('names the duplicated key and the custom tag as written', () => {
    expect(parseGoalText('f.yaml', 'path: a\npath: b\n').diagnostics[0]!.message).toBe('duplicate key "path": each key may appear once in a map');
    expect(parseGoalText('f.yaml', 'a: !!python/object:x {}\n').diagnostics[0]!.message).toBe('custom tag !!python/object:x is not allowed in goal files');
  });

  it.each([
    { name: '10k nested [', text: `a: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n` },
    { name: '10k nested {', text: `a: ${'{a: '.repeat(10_000)}1${'}'.repeat(10_000)}\n` },
    { name: '10k nested block sequences on one line', text: `a:\n  ${'- '.repeat(10_000)}x\n` },
    { name: '5k nested block sequences on their own lines', text: `a:\n${Array.from({ length: 5000 }, (_, i) => `${' '.repeat(i * 2)}-`).join('\n')} x\n` },
    { name: '3k nested block maps', text: `${Array.from({ length: 3000 }, (_, i) => `${' '.repeat(i)}k:`).join('\n')} 1\n` },
    { name: '100 nested block maps (past the limit, under the pre-scan)', text: `${Array.from({ length: 100 }, (_, i) => `${' '.repeat(i * 2)}k:`).join('\n')} 1\n` },
  ])('refuses deep nesting without a stack overflow: $name', ({ text }) => {
    const { documents, diagnostics } = parseGoalText('f.yaml', text);
    expect(documents).toEqual([]);
    expect(diagnostics.map((d) => d.code)).toEqual(['too-deep']);
    expect(diagnostics[0]!.line).toBeGreaterThan(0);
  });

  it('refuses an alias bomb at the alias whose copies pass the bound, before expanding anything', () => {
    const levels = ['a: &a [x,x,x,x,x,x,x,x,x]'];
    for (let i = 1; i < 9; i++) levels.push(`${'abcdefghi'[i]}: &${'abcdefghi'[i]} [${Array(9).fill(`*${'abcdefghi'[i - 1]}`).join(',')}]`);
    const { documents, diagnostics } = parseGoalText('f.yaml', `${levels.join('\n')}\n`);
    expect(documents).toEqual([]);
    // Each *f copies 1,130,338 nodes and characters: the total passes 8 MiB at the seventh.
    expect(diagnostics.map((d) => [d.code, d.line, d.col])).toEqual([['alias-bomb', 7, 26]]);
  });

  // The count of aliases (`maxAliasCount`) let a large value be copied 99 times: a 5.5 MB string made
  // 545 MB of input, and `validate` crashed on it (`Invalid string length`).
  const copied = (value: string, copies: number): string => `big: &a ${value}\nmore: [${Array(copies).fill('*a').join(',')}]\n`;
  const long = `"${'x'.repeat(1_000_000)}"`;
  const wide = `[${Array(300_000).fill('1').join(',')}]`;
  it.each([
    // The ninth copy (each alias 3 columns on from the first, at 8).
    { name: 'a long string', text: copied(long, 99), at: '2:32', size: 1_000_001, kept: 0 },
    // The twenty-eighth.
    { name: 'a long list', text: copied(wide, 99), at: '2:89', size: 300_001, kept: 0 },
    // The file's fourth copy in its second document: its first document is read.
    { name: 'a long string, over two documents', text: `${copied(long, 5)}---\n${copied(long, 5)}`, at: '5:17', size: 1_000_001, kept: 1 },
  ])('refuses $name copied by aliases past what a file may expand to, at that alias, on both parsers', ({ text, at, size, kept }) => {
    for (const forceFullParser of [false, true]) {
      const { documents, diagnostics } = parseGoalText('f.yaml', text, defaultLoadLimits, { forceFullParser });
      expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.code}: ${d.message}`)).toEqual([
        `${at} alias-bomb: alias *a copies ${size} nodes and characters, which takes what the aliases of this file expand to past 8388608; write the values out`,
      ]);
      expect(documents).toHaveLength(kept);
    }
  });

  it.each([
    { name: 'a map', text: 'a: &a\n  b: [1, *a]\n', at: '2:10' },
    { name: 'a list, by a key of a map in it', text: 'a: &a [1, { ? *a : 2 }]\n', at: '1:15' },
  ])('refuses an alias inside the value its anchor names ($name), which expands without end', ({ text, at }) => {
    for (const forceFullParser of [false, true]) {
      const { documents, diagnostics } = parseGoalText('f.yaml', text, defaultLoadLimits, { forceFullParser });
      expect(documents).toEqual([]);
      expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.code}`)).toContain(`${at} alias-cycle`);
    }
  });

  it('accepts a small map shared dozens of times, and a large value copied within the bound', () => {
    const shared = `base: &base { image: app, replicas: 2, labels: { team: web } }\n${Array.from({ length: 60 }, (_, i) => `n${i}: *base`).join('\n')}\n`;
    expect(parseGoalText('f.yaml', shared).diagnostics).toEqual([]);
    const { documents, diagnostics } = parseGoalText('f.yaml', copied(long, 8));
    expect(diagnostics).toEqual([]);
    expect((documents[0]!.value as { more: string[] }).more).toHaveLength(8);
  });

  it('shows at most 20 syntax errors and says how many more there are', () => {
    const { diagnostics } = parseGoalText('f.yaml', Array.from({ length: 40 }, (_, i) => `k${i}: [\n`).join(''));
    expect(diagnostics.length).toBeLessThanOrEqual(21);
    expect(diagnostics.at(-1)!.message).toMatch(/more YAML errors not shown$/);
  });

  it('accepts nesting at the limit', () => {
    const depth = defaultLoadLimits.maxDepth - 1;
    const { diagnostics } = parseGoalText('f.yaml', `a: ${'['.repeat(depth)}${']'.repeat(depth)}\n`);
    expect(diagnostics).toEqual([]);
  });
});

/**
 * A YAML error is reported where the user must look, once: the parser gives up elsewhere (past the end
 * of the file for an unclosed quote, the next line for an unclosed brace, the start of the line for a
 * misindented key) and says one tab in the indentation as four errors.
 */
describe('parseGoalText: YAML syntax errors, at their cause', () => {
  const goal = (nodeLines: string): string => `apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: g }\nspec:\n  nodes:\n    - id: a\n${nodeLines}`;
  const said = (text: string): string[] => sortDiagnostics(parseGoalText('f.yaml', text).diagnostics).map((d) => `${d.line}:${d.col} ${d.code}: ${d.message}`);

  it.each([
    {
      name: 'an unclosed double quote, at the quote (not past the end), and not also the brace it swallows',
      text: goal('      type: local.file\n      spec: { path: "x, content: x }\n'),
      want: ['8:21 yaml-syntax: this " is never closed: the string runs on to the end of the file (add the closing ")'],
    },
    {
      name: 'an unclosed single quote',
      text: "a: 'it\nb: 1\n",
      want: ["1:4 yaml-syntax: this ' is never closed: the string runs on to the end of the file (add the closing ')"],
    },
    {
      // The parser reads the quote on past the `---`, to the end of the file; YAML ends the document there.
      name: 'an unclosed quote hides no later document, each read on its own',
      text: "a: 'it\nb: 1\n---\nc: \"x\n---\nd: [1\n---\ne: 1\ne: 2\n",
      want: [
        "1:4 yaml-syntax: this ' is never closed: the string runs on to the end of the document, at the --- on line 3 (add the closing ')",
        '4:4 yaml-syntax: this " is never closed: the string runs on to the end of the document, at the --- on line 5 (add the closing ")',
        '6:4 yaml-syntax: this [ is never closed: a flow sequence ends with ] (each line it spans indented more than the line it starts on)',
        '9:1 duplicate-key: duplicate key "e": each key may appear once in a map',
      ],
    },
    {
      name: 'a brace never closed, at the brace (not the next line)',
      text: 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: g\nspec:\n  nodes: []\n',
      want: ['3:11 yaml-syntax: this { is never closed: a flow map ends with } (each line it spans indented more than the line it starts on)'],
    },
    {
      name: 'a bracket never closed',
      text: 'a: [1, 2\nb: 3\n',
      want: ['1:4 yaml-syntax: this [ is never closed: a flow sequence ends with ] (each line it spans indented more than the line it starts on)'],
    },
    {
      name: 'a key in line with no key above it, at the key (not column 1)',
      text: goal('      type: local.file\n      spec:\n        path: x\n       content: y\n'),
      want: ['10:8 yaml-syntax: key "content" is in line with no key above it: the keys of one map start at the same column'],
    },
    {
      name: 'a key one column deeper than the key above it, at the key, once',
      text: goal('      type: local.file\n       spec: { path: c, content: x }\n'),
      want: ['8:8 yaml-syntax: this key is indented more than the line above it, which already has its value: the keys of one map start at the same column'],
    },
    {
      name: 'a tab in the indentation, once, at the tab, with nothing it throws off',
      text: 'apiVersion: desiredstate/v1\nkind: Goal\nmetadata: { name: g }\nspec:\n  nodes:\n\t- id: d\n    type: local.file\n',
      want: ['6:1 yaml-syntax: a tab in indentation: YAML indents with spaces'],
    },
    {
      name: 'a tab on each of two lines: each line once',
      text: 'a:\n\tb: 1\n\tc: 2\n',
      want: ['2:1 yaml-syntax: a tab in indentation: YAML indents with spaces', '3:1 yaml-syntax: a tab in indentation: YAML indents with spaces'],
    },
    {
      name: 'a tab indenting a block scalar',
      text: 'a: |\n\tliteral\nb: 1\n',
      want: ['2:1 yaml-syntax: a tab in indentation: YAML indents with spaces'],
    },
    {
      name: 'an error before a tab is still reported',
      text: 'a: 1\na: 2\nb:\n\t- c\n',
      want: ['2:1 duplicate-key: duplicate key "a": each key may appear once in a map', '4:1 yaml-syntax: a tab in indentation: YAML indents with spaces'],
    },
  ])('$name', ({ text, want }) => {
    expect(said(text)).toEqual(want);
  });
});

describe('locateIn: positions inside a string', () => {
  const text = [
    'plain: abc ${x}',
    'double: "abc ${x}"',
    "single: 'it''s ${x}'",
    'escaped: "a\\tb ${x}"',
    'block: |',
    '  line one',
    '  two ${x}',
    'folded: >',
    '  one ${x}',
    'foldedTwo: >',
    '  one ${x} and',
    '  two ${y}',
    'quotedLines: "one',
    '  two ${x}"',
    'split: >',
    '  ${x} one ${goal.',
    '  name}',
    'multi: one two  ',
    '  three',
    '',
    '  four',
    'hex: "\\x41\\u00e9 z"',
    'dqLines: "one  ',
    '  two\\',
    '    three"',
    "singleLines: 'it''s",
    "  next'",
    'foldedMore: >',
    '  one',
    '',
    '    more',
    '  two',
    'indicated: |2',
    '    x',
  ].join('\n');
  const doc = parseGoalText('f.yaml', `${text}\n`).documents[0]!;
  it.each([
    { name: 'a plain scalar', key: 'plain', index: 4, at: '1:12' },
    { name: 'a double-quoted scalar', key: 'double', index: 4, at: '2:14' },
    { name: "a single-quoted scalar with ''", key: 'single', index: 5, at: '3:16' },
    { name: 'an escape before a reference: the reference', key: 'escaped', index: 4, at: '4:16' },
    { name: 'an escape, not at a reference: the character after it', key: 'escaped', index: 2, at: '4:14' },
    { name: 'an escape itself', key: 'escaped', index: 1, at: '4:12' },
    { name: 'a literal block scalar', key: 'block', index: 13, at: '7:7' },
    { name: 'a folded scalar: the reference', key: 'folded', index: 4, at: '9:7' },
    { name: 'a folded scalar, a reference on its second line: that one, not the first', key: 'foldedTwo', index: 17, at: '12:7' },
    { name: 'a double-quoted scalar over two lines: the reference on the second', key: 'quotedLines', index: 8, at: '14:7' },
    { name: 'a reference folded across two lines: where it starts', key: 'split', index: 9, at: '16:12' },
    { name: 'a plain scalar over lines, after trailing blanks', key: 'multi', index: 8, at: '19:3' },
    { name: 'a plain scalar over lines, after an empty line', key: 'multi', index: 14, at: '21:3' },
    { name: 'hex escapes (\\x41, \\u00e9): the character after them', key: 'hex', index: 3, at: '22:18' },
    { name: 'a double-quoted scalar over lines, after an escaped line break', key: 'dqLines', index: 7, at: '25:5' },
    { name: "a single-quoted scalar over lines, after ''", key: 'singleLines', index: 5, at: '27:3' },
    { name: 'a folded block scalar with a more-indented line', key: 'foldedMore', index: 7, at: '31:5' },
    { name: 'a folded block scalar, the line after a more-indented one', key: 'foldedMore', index: 12, at: '32:3' },
    { name: 'an indentation indicator the first line is indented past: falls back to the start', key: 'indicated', index: 2, at: '33:12' },
  ])('$name', ({ key, index, at }) => {
    const loc = doc.locateIn!([key], index);
    expect(`${loc.line}:${loc.col}`).toBe(at);
  });

  // Every style the yaml package writes a string in, folded at a short width: a position found is the
  // character itself (or the escape that writes it), else the scalar's start, never another place.
  it('points at the character itself, or at the start: never elsewhere', () => {
    const styles: Scalar.Type[] = [Scalar.PLAIN, Scalar.QUOTE_DOUBLE, Scalar.QUOTE_SINGLE, Scalar.BLOCK_LITERAL, Scalar.BLOCK_FOLDED];
    const chars = fc.constantFrom('a', 'b', ' ', ' ', '\n', '\t', '\\', '"', "'", 'é', '#', ':', '\u{1F600}');
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 40 }).map((a) => a.join('')), fc.constantFrom(...styles), fc.integer({ min: 8, max: 30 }), (value, type, lineWidth) => {
        const text = stringify({ k: value }, { defaultStringType: type, lineWidth, minContentWidth: 4 });
        const doc = parseGoalText('f.yaml', text).documents[0];
        if (doc === undefined || (doc.value as { k?: unknown }).k !== value) return;
        const lines = text.split('\n');
        const start = doc.locate(['k']);
        for (let i = 0; i < value.length; i++) {
          const at = doc.locateIn!(['k'], i);
          if (at.line === start.line && at.col === start.col) continue;
          const there = lines[at.line - 1]!.slice(at.col - 1);
          const c = value[i]!;
          // A blank or a line break may be read from a fold (a break, the blanks around it) or an escape.
          if (/\s/.test(c)) expect(there, `${JSON.stringify(text)} at ${i}`).toMatch(/^(\s|\\|$)/);
          else expect(there.startsWith(c) || there.startsWith('\\'), `${JSON.stringify(text)} at ${i}: ${JSON.stringify(there)}`).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a block scalar whose first line holds a tab: the tab is text, not indentation (found by the property above)', () => {
    const text = 'k: |-\n  \t\n   a\n';
    const doc = parseGoalText('f.yaml', text).documents[0]!;
    expect((doc.value as { k: string }).k).toBe('\t\n a');
    const at = (i: number): string => {
      const l = doc.locateIn!(['k'], i);
      return `${l.line}:${l.col}`;
    };
    expect([at(0), at(2), at(3)]).toEqual(['2:3', '3:3', '3:4']);
  });

  it('maps raw offsets with scalarOffset', () => {
    expect(scalarOffset('"a${b}"', 'QUOTE_DOUBLE', 'a${b}', 1)).toBe(2);
    expect(scalarOffset('abc', 'PLAIN', 'abc', 9)).toBeUndefined();
  });
});

describe('nestingGuard', () => {
  it.each([
    { name: 'flat YAML', text: 'a: 1\nb: [1, {c: 2}]\n', at: undefined },
    { name: 'a comment with brackets', text: `a: 1 # ${'['.repeat(100)}\n`, at: undefined },
    { name: 'an apostrophe in plain text does not hide brackets', text: `a: [it's ${'['.repeat(70)}`, at: 9 + 63 },
  ])('$name', ({ text, at }) => {
    expect(nestingGuard(text, 64)).toBe(at);
  });
});

describe('decodeUtf8', () => {
  it.each([
    { name: 'valid UTF-8 with accents', bytes: Buffer.from('a: café\n'), result: 'a: café\n' },
    { name: 'a BOM is dropped', bytes: Buffer.from('\uFEFFa: 1\n'), result: 'a: 1\n' },
    { name: 'a Latin-1 byte', bytes: Buffer.from([0x61, 0x3a, 0x20, 0x63, 0x61, 0x66, 0xe9, 0x0a]), result: { line: 1, col: 7, byte: 0xe9 } },
    { name: 'on the second line, after a multibyte character', bytes: Buffer.concat([Buffer.from('a: 1\nb: é '), Buffer.from([0xff])]), result: { line: 2, col: 6, byte: 0xff } },
    { name: 'a real U+FFFD before the bad byte does not mislead', bytes: Buffer.concat([Buffer.from('x: \uFFFD\ny: '), Buffer.from([0xc0, 0xaf])]), result: { line: 2, col: 4, byte: 0xc0 } },
    { name: 'a UTF-16 surrogate encoded in UTF-8', bytes: Buffer.from([0x61, 0xed, 0xa0, 0x80]), result: { line: 1, col: 2, byte: 0xed } },
    { name: 'a truncated sequence at the end', bytes: Buffer.from([0x61, 0x0a, 0xe2, 0x82]), result: { line: 2, col: 1, byte: 0xe2 } },
  ])('$name', ({ bytes, result }) => {
    expect(decodeUtf8(bytes)).toEqual(result);
  });
});

describe('loadGoalDirectory', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ds-load-'));
    await mkdir(join(dir, 'b', 'nested'), { recursive: true });
    await mkdir(join(dir, '.hidden'));
    for (const [p, t] of [
      ['z.yaml', 'n: z\n'],
      ['a.yml', 'n: a\n---\nn: a2\n'],
      ['b/nested/c.yaml', 'n: c\n'],
      ['b/a.YAML', 'n: ba\n'],
      ['notes.txt', 'n: txt\n'],
      ['.hidden/h.yaml', 'n: hidden\n'],
      ['.dot.yaml', 'n: dot\n'],
    ]) await writeFile(join(dir, p!), t!);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads *.yaml and *.yml recursively, in sorted order, skipping dot files, with paths relative to the display root', async () => {
    const { documents, diagnostics, files } = await loadGoalDirectory(dir, { displayRoot: dir });
    expect(diagnostics).toEqual([]);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['a.yml', 'b/a.YAML', 'b/nested/c.yaml', 'z.yaml']);
    expect(documents.map((d) => [d.file, (d.value as { n: string }).n])).toEqual([
      ['a.yml', 'a'],
      ['a.yml', 'a2'],
      ['b/a.YAML', 'ba'],
      ['b/nested/c.yaml', 'c'],
      ['z.yaml', 'z'],
    ]);
  });

  it('refuses more files than the limit', async () => {
    const { diagnostics } = await loadGoalDirectory(dir, { displayRoot: dir, limits: { ...defaultLoadLimits, maxFiles: 2 } });
    expect(diagnostics.map((d) => d.code)).toEqual(['too-many-files']);
    // The directory as every other path is shown (it was absolute), with no made-up line and column.
    expect(diagnostics.map((d) => [d.file, d.line, d.col])).toEqual([['.', 0, 0]]);
  });

  it('walkGoalTree: the same goal files and every directory walked, dot entries skipped, in one walk', async () => {
    const tree = await walkGoalTree(dir);
    const rel = (paths: readonly string[]): string[] => paths.map((p) => p.slice(dir.length + 1));
    expect(rel(tree.files)).toEqual(['a.yml', 'b/a.YAML', 'b/nested/c.yaml', 'z.yaml']);
    expect(rel(tree.directories)).toEqual(['', 'b', 'b/nested']);
  });

  it('walkGoalTree: the goal directory itself that cannot be read is an error', async () => {
    await expect(walkGoalTree(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

// A goal file or directory that is a symbolic link was skipped without a word (with prune, its
// nodes would have been deleted); a dangling link or a FIFO named *.yaml too. Links are followed,
// a loop is walked once, and what cannot be read as a goal file is an error at that file.
describe.skipIf(process.platform === 'win32')('loadGoalDirectory: links and special files', () => {
  let root: string;
  let goals: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'ds-links-'));
    goals = join(root, 'goals');
    await mkdir(join(root, 'shared/sub'), { recursive: true });
    await mkdir(goals);
    await writeFile(join(goals, 'a.yaml'), 'n: a\n');
    await writeFile(join(root, 'real.yaml'), 'n: linked-file\n');
    await writeFile(join(root, 'shared/sub/s.yaml'), 'n: linked-dir\n');
    await symlink(join(root, 'real.yaml'), join(goals, 'b.yaml'));
    await symlink(join(root, 'shared'), join(goals, 'c'));
    await symlink('.', join(goals, 'loop'));
    await symlink(join(root, 'shared'), join(root, 'shared/sub/back'));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads a linked goal file and a linked directory, and walks a loop of links once', async () => {
    const { documents, diagnostics, files } = await loadGoalDirectory(goals, { displayRoot: goals });
    expect(diagnostics).toEqual([]);
    expect(files.map((f) => f.slice(goals.length + 1))).toEqual(['a.yaml', 'b.yaml', 'c/sub/s.yaml']);
    expect(documents.map((d) => [d.file, (d.value as { n: string }).n])).toEqual([
      ['a.yaml', 'a'],
      ['b.yaml', 'linked-file'],
      ['c/sub/s.yaml', 'linked-dir'],
    ]);
  });

  it('a link to nothing and a FIFO named *.yaml are errors at that file, read without waiting', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ds-special-'));
    try {
      await writeFile(join(dir, 'a.yaml'), 'n: a\n');
      await symlink(join(dir, 'missing.yaml'), join(dir, 'gone.yaml'));
      execFileSync('mkfifo', [join(dir, 'pipe.yaml')]);
      const { diagnostics } = await loadGoalDirectory(dir, { displayRoot: dir });
      expect(diagnostics).toEqual([
        { file: 'gone.yaml', line: 1, col: 1, severity: 'error', code: 'unreadable-file', message: 'cannot read goal file: it is a symbolic link to nothing (ENOENT)' },
        { file: 'pipe.yaml', line: 1, col: 1, severity: 'error', code: 'not-a-file', message: 'goal file is a FIFO, not a regular file' },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a directory named *.yaml or *.yml (or a link to one) in a goal file\'s place is an error at that name, not walked: never a goal removed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ds-dir-named-goal-'));
    try {
      await writeFile(join(dir, 'a.yaml'), 'n: a\n');
      await mkdir(join(dir, 'web.yaml'));
      await writeFile(join(dir, 'web.yaml', 'inner.yaml'), 'n: inner\n');
      await mkdir(join(dir, 'elsewhere'));
      await symlink(join(dir, 'elsewhere'), join(dir, 'db.YML'));
      const { documents, diagnostics, files } = await loadGoalDirectory(dir, { displayRoot: dir });
      expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['a.yaml', 'db.YML', 'web.yaml']);
      expect(documents.map((d) => d.file)).toEqual(['a.yaml']);
      const hint = ' (a directory named *.yaml or *.yml is not read as goals: rename it)';
      expect(diagnostics).toEqual([
        { file: 'db.YML', line: 1, col: 1, severity: 'error', code: 'not-a-file', message: `goal file is a directory, not a regular file${hint}` },
        { file: 'web.yaml', line: 1, col: 1, severity: 'error', code: 'not-a-file', message: `goal file is a directory, not a regular file${hint}` },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
