import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { statSync } from 'node:fs';
import type { Dirent, Stats } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { createRequire } from 'node:module';
import type { Alias, Document, Node as YamlNode, Pair } from 'yaml';
import type * as Yaml from 'yaml';
import type { Diagnostic } from './diagnostics.ts';
import { systemReason } from './errors.ts';
import { inexactNumber } from './json.ts';
import type { SourceLocation } from './node-spec.ts';
import { specialFileKind } from './read-bounded.ts';

export type PathKey = string | number;

/** Limits that keep hostile input cheap to refuse. */
export interface LoadLimits {
  /** Largest goal file, in bytes. */
  readonly maxFileBytes: number;
  /** Deepest nesting of maps and sequences. */
  readonly maxDepth: number;
  /** Most alias dereferences per document (alias bombs). */
  readonly maxAliasCount: number;
  /**
   * Most nodes and string characters the aliases of one file expand to, together: a few aliases of a
   * large value multiply the file as surely as many of a small one.
   */
  readonly maxAliasExpansion: number;
  /** Most goal files in a goal set. */
  readonly maxFiles: number;
}

export const defaultLoadLimits: LoadLimits = {
  maxFileBytes: 8 * 1024 * 1024,
  maxDepth: 64,
  maxAliasCount: 100,
  // As much again as the largest file holds: what aliases add costs no more than a file could.
  maxAliasExpansion: 8 * 1024 * 1024,
  maxFiles: 10_000,
};

/** One parsed YAML document with a way back to its source positions. */
export interface SourceDocument {
  readonly file: string;
  /** Index of the document in its file (0-based). */
  readonly index: number;
  readonly value: unknown;
  /** The position of the value (or of the key) at `path`; the nearest existing ancestor if the path is absent. */
  locate(path: readonly PathKey[], part?: 'key' | 'value'): SourceLocation;
  /**
   * Each whole number written in digits from 1e21 on, which its value read cannot tell from a float
   * (`inexactNumber`), as an error where it is written: the compiler says it unless the field already
   * refuses the value there (a port's range), one error per wrong value.
   */
  readonly inexactNumbers?: readonly Diagnostic[];
  /**
   * The position of character `index` of the string at `path` (for example
   * a `${` inside it), or of the string's start where the source cannot be
   * mapped exactly (escapes, folded scalars).
   */
  locateIn?(path: readonly PathKey[], index: number): SourceLocation;
}

const CORE_TAGS = new Set([
  'tag:yaml.org,2002:str',
  'tag:yaml.org,2002:int',
  'tag:yaml.org,2002:float',
  'tag:yaml.org,2002:bool',
  'tag:yaml.org,2002:null',
  'tag:yaml.org,2002:map',
  'tag:yaml.org,2002:seq',
]);

/**
 * Keys a goal may not use: they name a JavaScript object's own machinery (its prototype, its class),
 * which goal data must never reach. Each is an error, taken out of the tree so that the rest of its
 * document is still read and its other problems reported.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

let yamlModule: typeof Yaml | undefined;

/**
 * The full YAML parser, loaded the first time a file leaves the fast path
 * (most goal files never do): its 70 modules are a tenth of a one-shot
 * command's start-up. Synchronous, as parsing is.
 */
function yaml(): typeof Yaml {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml);
}

/**
 * Parses one goal file's text. YAML 1.2 core schema only (so `NO` is a
 * string and `0644` is a decimal number), no merge keys, no custom tags, no
 * duplicate keys, no `__proto__`, `constructor` or `prototype` keys, bounded aliases and depth. Problems
 * are returned as diagnostics; nothing throws.
 */
export function parseGoalText(
  file: string,
  text: string,
  limits: LoadLimits = defaultLoadLimits,
  options: { forceFullParser?: boolean; /** What the file is, in messages (default "goal file"). */ fileKind?: string } = {},
): { documents: SourceDocument[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const kind = options.fileKind ?? 'goal file';
  const at = positions(file, text);
  const problem = (loc: SourceLocation, code: string, message: string): void => {
    diagnostics.push({ ...loc, severity: 'error', code, message });
  };

  if (text.trim() === '') {
    problem({ file, line: 1, col: 1 }, 'empty-file', `${kind} is empty`);
    return { documents: [], diagnostics };
  }
  // A CR alone (classic Mac line endings) reads as no line break at all: a screenful of errors on line 1.
  const loneCr = text.includes('\r') ? /\r(?!\n)/.exec(text) : null;
  if (loneCr !== null) {
    problem(at(loneCr.index), 'line-endings', 'a carriage return (CR) without a line feed: save the file with LF (or CRLF) line endings');
    return { documents: [], diagnostics };
  }
  // The fast path bails out well before its (bounded) recursion gets deep.
  if (!options.forceFullParser) {
    const fast = fastParse(file, text, at, limits.maxDepth);
    if (fast !== undefined) return { documents: fast, diagnostics };
  }

  // The full parser recurses on nesting: refuse absurd depth before it runs,
  // so that 10k nested `[` costs a scan, not a stack overflow.
  const tooDeep = nestingGuard(text, limits.maxDepth);
  if (tooDeep !== undefined) {
    problem(at(tooDeep), 'too-deep', `nesting deeper than ${limits.maxDepth} levels`);
    return { documents: [], diagnostics };
  }

  let docs: ParsedDocument[];
  try {
    docs = parseDocuments(text);
  } catch (err) {
    // The guard above should make this unreachable; a stack overflow is still hostile input, not a crash.
    problem({ file, line: 1, col: 1 }, err instanceof RangeError ? 'too-deep' : 'yaml-syntax', err instanceof RangeError ? `nesting deeper than ${limits.maxDepth} levels` : firstLine(String(err)));
    return { documents: [], diagnostics };
  }

  const documents: SourceDocument[] = [];
  // Shared by the file's documents: the bound is on what the file expands to.
  const aliasBudget = { left: limits.maxAliasExpansion };
  let yamlErrors = 0;
  let emptyDocuments = 0;
  docs.forEach(({ doc, source, sourceIndex }, index) => {
    let bad = false;
    for (const e of syntaxErrors(doc, text, at)) {
      // A duplicate key is an error, but the document around it is whole: it is still compiled (its
      // later value taken), so that its other problems are reported in the same run. The error keeps
      // the revision from being used. A syntax error leaves no document to speak of.
      if (e.code !== 'DUPLICATE_KEY') bad = true;
      // After the first few, syntax errors are mostly echoes of the first.
      if (++yamlErrors > MAX_SYNTAX_ERRORS) continue;
      if (e.code === 'DUPLICATE_KEY') problem(at(e.pos[0]), 'duplicate-key', `duplicate key ${keyAt(doc, e.pos[0])}: each key may appear once in a map`);
      else problem(at(e.at), 'yaml-syntax', e.message);
    }
    for (const w of doc.warnings) {
      // A custom tag is reported by `checkTree`, every one of them, and the document compiled around
      // it (its value read as if untagged): as for a duplicate key, its other problems show in the same run.
      if (w.code === 'TAG_RESOLVE_FAILED') continue;
      bad = true;
      problem(at(w.pos[0]), 'yaml-warning', firstLine(w.message));
    }
    if (bad) return;
    if (doc.contents === null || (yaml().isScalar(doc.contents) && doc.contents.value === null && doc.contents.source === '')) {
      // `---` followed by nothing. A stray trailing `---` is harmless; a file of nothing else is not.
      emptyDocuments++;
      return;
    }
    // Before `checkTree`, which takes merge keys (and their aliases) out of the tree.
    const badAlias = expandingAlias(doc, aliasBudget);
    const found = { merges: false, forbidden: false, inexact: [] as Diagnostic[] };
    const whole = checkTree(doc.contents, text, limits, at, problem, notIn(kind), found);
    if (badAlias !== undefined) {
      const { alias, size } = badAlias;
      const name = alias.source;
      if (size === undefined) problem(at(alias.range?.[0] ?? 0), 'alias-cycle', `alias *${name} is inside the value &${name} names: it would expand without end`);
      else problem(at(alias.range?.[0] ?? 0), 'alias-bomb', `alias *${name} copies ${size} nodes and characters, which takes what the aliases of this file expand to past ${limits.maxAliasExpansion}; write the values out`);
    }
    if (!whole || badAlias !== undefined) return;
    let value: unknown;
    try {
      // Merged from the text again, a forbidden key would be back: the tree, which has none, is read then.
      value = (found.merges && !found.forbidden ? mergedValue(source, sourceIndex, limits) : undefined) ?? doc.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (err) {
      // An alias with no anchor set before it (`*name`), or too many expansions.
      const unresolved = err instanceof ReferenceError ? firstAlias(doc.contents, (a) => a.resolve(doc) === undefined) : undefined;
      if (unresolved !== undefined) {
        problem(at(unresolved.range?.[0] ?? 0), 'unknown-alias', `alias *${unresolved.source} names no anchor (&${unresolved.source}) set before it in this document`);
      } else {
        problem(at(firstAlias(doc.contents)?.range?.[0] ?? doc.contents.range?.[0] ?? 0), 'alias-bomb', `aliases expand to too many nodes (more than ${limits.maxAliasCount}); write the values out`);
      }
      return;
    }
    const contents = doc.contents;
    documents.push({
      file,
      index,
      value,
      ...(found.inexact.length === 0 ? {} : { inexactNumbers: found.inexact }),
      locate(path, part = 'value') {
        const hit = nodeAt(contents, path);
        const node = part === 'key' && hit.key !== undefined ? hit.key : hit.value;
        return at(node?.range?.[0] ?? contents.range?.[0] ?? 0);
      },
      locateIn(path, index) {
        const node = nodeAt(contents, path).value;
        const start = node.range?.[0] ?? contents.range?.[0] ?? 0;
        if (!yaml().isScalar(node) || typeof node.value !== 'string' || node.range === undefined || node.range === null) return at(start);
        const offset = scalarOffset(text.slice(start, node.range[1]), node.type, node.value, index);
        return at(start + (offset ?? 0));
      },
    });
  });
  if (yamlErrors > MAX_SYNTAX_ERRORS) {
    problem(at(text.length), 'yaml-syntax', `${yamlErrors - MAX_SYNTAX_ERRORS} more YAML errors not shown`);
  }
  if (diagnostics.length === 0 && documents.length === 0) {
    problem({ file, line: 1, col: 1 }, 'empty-file', emptyDocuments > 0 ? `${kind} holds only empty YAML documents` : `${kind} holds no YAML document`);
  }
  return { documents, diagnostics };
}

/** A document as parsed, with the text it was parsed from and its index there (for `mergedValue`). */
interface ParsedDocument {
  /** Its positions are offsets into the whole file's text, whatever it was parsed from. */
  readonly doc: Document.Parsed;
  readonly source: string;
  readonly sourceIndex: number;
}

/**
 * The documents of `text`. The parser reads an unclosed quote on past a `---` at column 0, where YAML
 * ends the document, to the end of the file: every later document would go unchecked. The text from
 * such a `---` on is parsed again, one document at a time (split at each `---`, so that another unclosed
 * quote takes in no more than its own document), each moved to its offsets in the file.
 */
function parseDocuments(text: string): ParsedDocument[] {
  const parse = (source: string): Document.Parsed[] => {
    const docs = yaml().parseAllDocuments(source, PARSE_OPTIONS) as Document.Parsed[] | Document.Parsed;
    return Array.isArray(docs) ? docs : [docs];
  };
  const out: ParsedDocument[] = [];
  for (const [sourceIndex, doc] of parse(text).entries()) {
    out.push({ doc, source: text, sourceIndex });
    const swallowed = nextDocumentMarker(text, (doc.contents?.range?.[0] ?? doc.range[0]) + 1);
    if (swallowed === undefined || swallowed >= doc.range[1]) continue;
    for (let start = swallowed; start < text.length; ) {
      const end = nextDocumentMarker(text, start + 1) ?? text.length;
      const source = text.slice(start, end);
      for (const [i, d] of parse(source).entries()) out.push({ doc: moved(d, start), source, sourceIndex: i });
      start = end;
    }
    // The rest of the file was this document's.
    break;
  }
  return out;
}

/** The offset of the first `---` document marker at column 0 at or after `from`. */
function nextDocumentMarker(text: string, from: number): number | undefined {
  const marker = /^---(?=[ \t\r\n]|$)/gm;
  marker.lastIndex = from;
  return marker.exec(text)?.index;
}

/** `doc`, parsed from a slice of the file that starts at `by`, with its positions made the file's. */
function moved(doc: Document.Parsed, by: number): Document.Parsed {
  const shift = (r: [number, number, number]): [number, number, number] => [r[0] + by, r[1] + by, r[2] + by];
  yaml().visit(doc, {
    Node(_key, node) {
      if (node.range !== undefined && node.range !== null) node.range = shift(node.range);
    },
  });
  doc.range = shift(doc.range);
  for (const e of [...doc.errors, ...doc.warnings]) e.pos = [e.pos[0] + by, e.pos[1] + by];
  return doc;
}

/** Offset -> 1-based line and column (UTF-16 units, as editors count them), from one pass over the text. */
function positions(file: string, text: string): (offset: number) => SourceLocation {
  let starts: number[] | undefined;
  return (offset) => {
    if (starts === undefined) {
      starts = [0];
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
    }
    const o = Math.max(0, Math.min(offset, text.length));
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= o) lo = mid;
      else hi = mid - 1;
    }
    return { file, line: lo + 1, col: o - starts[lo]! + 1 };
  };
}

/** "goal files", "a fault policy file": where a construct is not allowed. */
function notIn(kind: string): string {
  return kind === 'goal file' ? 'goal files' : `a ${kind}`;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

const MAX_SYNTAX_ERRORS = 20;

/** A YAML error as reported: at `at`, the place the user must look, in words of ours where the parser's mislead. */
interface SyntaxError {
  readonly code: string;
  readonly pos: readonly [number, number];
  readonly at: number;
  readonly message: string;
  /** An unclosed quote or a tab in indentation: the parser's errors past it are echoes of it. */
  readonly cause?: true;
}

/**
 * A document's YAML errors, each where the user must look, and without the
 * echoes of one cause. The parser reports an unclosed quote or bracket where
 * it gave up (past the end of the file, the next line), a misindented key at
 * the start of its line, and a tab in indentation as four errors, the first
 * of them about block sequences: here an unclosed `"` or `{` is reported at
 * itself (found among the nodes the parser made: the scalar or collection
 * that ends where the error is), a misindented key at the key, and a tab
 * once, at the tab, with nothing it throws off after it.
 */
function syntaxErrors(doc: Document.Parsed, text: string, position: (offset: number) => SourceLocation): SyntaxError[] {
  if (doc.errors.length === 0) return [];
  let nodes: YamlNode[] | undefined;
  const allNodes = (): YamlNode[] => {
    if (nodes === undefined) {
      const found: YamlNode[] = [];
      yaml().visit(doc, { Node: (_key, node) => void found.push(node) });
      nodes = found;
    }
    return nodes;
  };
  const start = (n: YamlNode): number => n.range?.[0] ?? -1;
  const end = (n: YamlNode): number => n.range?.[1] ?? -1;
  const out: SyntaxError[] = [];
  // Where the parser found a key nested in a value (`Nested mappings are not allowed in compact mappings`, at the value).
  const nested = new Set(doc.errors.filter((e) => e.code === 'BLOCK_AS_IMPLICIT_KEY').map((e) => e.pos[0]));
  // Where the rest of the document stops being what the user wrote (an unclosed quote takes it all in).
  let cutAt = Infinity;
  for (const e of doc.errors) {
    const pos = e.pos;
    const said = (at: number, message: string, cause = false): void => void out.push({ code: e.code, pos, at, message, ...(cause ? { cause } : {}) });
    const quote = e.code === 'MISSING_CHAR' ? /^Missing closing (["'])quote/.exec(e.message)?.[1] : undefined;
    const flow = /^Flow (map|sequence)\b.*end with an? ([}\]])/.exec(e.message);
    if (quote !== undefined) {
      const scalar = allNodes().find((n) => yaml().isScalar(n) && (n.type === 'QUOTE_DOUBLE' || n.type === 'QUOTE_SINGLE') && end(n) === pos[0]);
      const opened = scalar === undefined ? pos[0] : start(scalar);
      // Past a `---`, the next document is read on its own (`parseDocuments`).
      const next = nextDocumentMarker(text, opened + 1);
      const to = next === undefined ? 'the end of the file' : `the end of the document, at the --- on line ${position(next).line}`;
      said(opened, `this ${quote} is never closed: the string runs on to ${to} (add the closing ${quote})`, true);
      cutAt = Math.min(cutAt, opened);
    } else if (flow !== null && (e.code === 'BAD_INDENT' || e.code === 'MISSING_CHAR')) {
      const collection = allNodes().find((n) => (yaml().isMap(n) || yaml().isSeq(n)) && n.flow === true && end(n) === pos[0]);
      const [open, close] = flow[2] === '}' ? ['{', '}'] : ['[', ']'];
      said(
        collection === undefined ? pos[0] : start(collection),
        `this ${open} is never closed: a flow ${flow[1]} ends with ${close} (each line it spans indented more than the line it starts on)`,
      );
    } else if (e.code === 'BAD_INDENT' && e.message.startsWith('All mapping items must start at the same column')) {
      // Reported at the start of the key's line (or the blank line before it): the key is the first node after.
      const key = allNodes().filter((n) => start(n) >= pos[0]).reduce<YamlNode | undefined>((a, n) => (a === undefined || start(n) < start(a) ? n : a), undefined);
      const at = key === undefined ? pos[0] : start(key);
      const name = key !== undefined && yaml().isScalar(key) && typeof key.value === 'string' ? `key "${key.value}"` : 'this key';
      said(at, `${name} is in line with no key above it: the keys of one map start at the same column`);
    } else if (e.code === 'MULTILINE_IMPLICIT_KEY' && nested.has(pos[0]) && text.slice(pos[0], pos[1]).includes('\n')) {
      // `type: local.file` then `   spec: …` one column deeper: read as a key "local.file spec" nested in a value.
      const lineStart = text.lastIndexOf('\n', pos[1] - 1) + 1;
      let at = lineStart;
      while (text[at] === ' ') at++;
      said(at, `this key is indented more than the line above it, which already has its value: the keys of one map start at the same column`);
    } else if (e.code === 'TAB_AS_INDENT' || (text[pos[0]] === '\t' && /^[ \t]*$/.test(text.slice(text.lastIndexOf('\n', pos[0] - 1) + 1, pos[0])))) {
      said(pos[0], 'a tab in indentation: YAML indents with spaces', true);
      // What the tab throws off starts at the line break before it.
      cutAt = Math.min(cutAt, text.lastIndexOf('\n', pos[0]));
    } else {
      said(pos[0], firstLine(e.message));
    }
  }
  // The parser's other words for a key nested in a value, said at the key above.
  const multiline = new Set(out.filter((e) => e.code === 'MULTILINE_IMPLICIT_KEY' && e.at !== e.pos[0]).map((e) => e.pos[0]));
  const seen = new Set<string>();
  return out.filter((e) => {
    if (e.code === 'BLOCK_AS_IMPLICIT_KEY' && multiline.has(e.pos[0])) return false;
    // Past an unclosed quote or a tab, the parser reads another document than the user's: its errors are echoes.
    if (e.cause !== true && e.pos[1] > cutAt) return false;
    // One tab per line is enough.
    const key = e.cause === true && text[e.at] === '\t' ? `tab:${text.lastIndexOf('\n', e.at)}` : `${e.at}:${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}


// ---------------------------------------------------------------------------
// Fast path. The `yaml` package builds a full CST and AST with ranges for
// every token; on large goal sets that is most of the compile time and
// memory. Goal files are mostly plain block YAML, so a small parser reads
// that subset directly into values plus a compact position index. It bails
// out (returns undefined) on anything it does not handle exactly like the
// full parser (anchors, tags, multi-line plain or quoted scalars, folded
// scalars, floats, nulls, duplicate or forbidden keys, tabs, CR …), and the
// full parser then reads the file and reports whatever is wrong. A
// differential property test holds the two to the same values and positions.
// ---------------------------------------------------------------------------

/** Position index of one value: offset, and for strings the scalar's end and style (for locateIn). */
interface PosNode {
  readonly o: number;
  readonly e?: number;
  readonly s?: 'PLAIN' | 'QUOTE_DOUBLE' | 'QUOTE_SINGLE' | 'BLOCK_LITERAL';
  readonly keys?: Map<string, { readonly k: number; readonly v: PosNode }>;
  readonly items?: PosNode[];
}

const BAIL = new Error('fast YAML path: not handled');
const PLAIN_KEY = /[A-Za-z_][A-Za-z0-9_./-]*/y;
const NON_STRING_KEYS = new Set(['null', 'Null', 'NULL', 'true', 'True', 'TRUE', 'false', 'False', 'FALSE']);

/** Whether `parseGoalText` reads `text` on its fast path (for tests and benchmarks). */
export function readsOnFastPath(text: string, limits: LoadLimits = defaultLoadLimits): boolean {
  return fastParse('', text, () => ({ file: '', line: 1, col: 1 }), limits.maxDepth) !== undefined;
}

function fastParse(file: string, text: string, at: (offset: number) => SourceLocation, maxDepth: number): SourceDocument[] | undefined {
  if (text.includes('\t') || text.includes('\r') || text.charCodeAt(0) === 0xfeff) return undefined;
  try {
    return new FastYaml(text, maxDepth).documents().map(({ value, pos }, index) => ({
      file,
      index,
      value,
      locate(path, part = 'value') {
        const hit = fastNodeAt(pos, path);
        return at(part === 'key' && hit.key !== undefined ? hit.key : hit.value);
      },
      locateIn(path, index2) {
        const node = fastNodeAt(pos, path).node;
        if (node.s === undefined || node.e === undefined) return at(node.o);
        const raw = text.slice(node.o, node.e);
        const value2 = valueAtPath(value, path);
        if (typeof value2 !== 'string') return at(node.o);
        return at(node.o + (scalarOffset(raw, node.s, value2, index2) ?? 0));
      },
    }));
  } catch (err) {
    if (err === BAIL) return undefined;
    throw err;
  }
}

/** The value at `path` inside plain parsed data, or undefined where the path leaves it. */
export function valueAtPath(root: unknown, path: readonly PathKey[]): unknown {
  let cur = root;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p as string];
  }
  return cur;
}

/** The same walk as nodeAt, over the fast index. */
function fastNodeAt(root: PosNode, path: readonly PathKey[]): { key?: number; value: number; node: PosNode } {
  let current = root;
  let key: number | undefined;
  for (const step of path) {
    if (current.keys !== undefined) {
      const entry = current.keys.get(String(step));
      if (entry === undefined) break;
      key = entry.k;
      current = entry.v;
    } else if (current.items !== undefined && typeof step === 'number') {
      const item = current.items[step];
      if (item === undefined) break;
      key = item.o;
      current = item;
    } else {
      break;
    }
  }
  return key === undefined ? { value: current.o, node: current } : { key, value: current.o, node: current };
}

class FastYaml {
  private readonly text: string;
  private readonly maxDepth: number;
  /** Start offset of each line, and one past the end. */
  private readonly starts: number[] = [];
  /** End offset of each line (its newline, or the end of the text). */
  private readonly ends: number[] = [];
  private line = 0;

  constructor(text: string, maxDepth: number) {
    this.text = text;
    this.maxDepth = maxDepth;
    for (let i = 0; i < text.length; ) {
      this.starts.push(i);
      const nl = text.indexOf('\n', i);
      this.ends.push(nl === -1 ? text.length : nl);
      i = nl === -1 ? text.length : nl + 1;
    }
  }

  private get lines(): number {
    return this.starts.length;
  }

  /** End of line `l` (the offset of its newline, or the text's end). */
  private end(l: number): number {
    return this.ends[l]!;
  }

  private indent(l: number): number {
    const s = this.starts[l]!;
    let i = s;
    while (this.text.charCodeAt(i) === 32) i++;
    return i - s;
  }

  private blank(l: number): boolean {
    const s = this.starts[l]! + this.indent(l);
    return s >= this.end(l) || this.text[s] === '#';
  }

  private isSeparator(l: number): boolean {
    const s = this.starts[l]!;
    if (!this.text.startsWith('---', s)) return false;
    const rest = this.text.slice(s + 3, this.end(l));
    if (rest.trim() === '' ) return true;
    if (/^\s/.test(rest) || rest.startsWith('-')) throw BAIL;
    return false;
  }

  private skipBlank(): void {
    while (this.line < this.lines && this.blank(this.line)) this.line++;
  }

  documents(): { value: unknown; pos: PosNode }[] {
    const out: { value: unknown; pos: PosNode }[] = [];
    this.skipBlank();
    if (this.line < this.lines && this.isSeparator(this.line)) {
      this.line++;
    }
    for (;;) {
      this.skipBlank();
      if (this.line >= this.lines) break;
      const t = this.text[this.starts[this.line]!];
      if (t === '%' || this.text.startsWith('...', this.starts[this.line]!)) throw BAIL;
      if (this.isSeparator(this.line) || this.indent(this.line) !== 0) throw BAIL; // empty document or odd indentation
      out.push(this.block(0, 1));
      this.skipBlank();
      if (this.line >= this.lines) break;
      if (!this.isSeparator(this.line)) throw BAIL;
      this.line++;
    }
    if (out.length === 0) throw BAIL;
    return out;
  }

  /** A block map or sequence whose first line is `this.line`, at indentation `n`. */
  private block(n: number, depth: number, firstCol?: number): { value: unknown; pos: PosNode } {
    if (depth >= this.maxDepth) throw BAIL;
    const start = firstCol ?? this.starts[this.line]! + n;
    if (this.text[start] === '-' && /[ \n]/.test(this.text[start + 1] ?? '\n')) return this.seq(n, depth, start);
    return this.map(n, depth, start);
  }

  private map(n: number, depth: number, firstStart: number): { value: unknown; pos: PosNode } {
    const value: Record<string, unknown> = {};
    const keys = new Map<string, { k: number; v: PosNode }>();
    let first = true;
    for (;;) {
      const l = this.line;
      const s = first ? firstStart : this.starts[l]! + n;
      first = false;
      PLAIN_KEY.lastIndex = s;
      const m = PLAIN_KEY.exec(this.text);
      if (m === null) throw BAIL;
      const key = m[0];
      let i = s + key.length;
      if (this.text[i] !== ':') throw BAIL;
      i++;
      if (i < this.end(l) && this.text[i] !== ' ') throw BAIL;
      if (keys.has(key) || FORBIDDEN_KEYS.has(key) || NON_STRING_KEYS.has(key) || key === '<<') throw BAIL;
      while (this.text[i] === ' ') i++;
      const entry = this.value(n, depth, l, i);
      keys.set(key, { k: s, v: entry.pos });
      value[key] = entry.value;
      this.skipBlank();
      if (this.line >= this.lines) break;
      const ind = this.indent(this.line);
      if (ind < n) break;
      if (ind > n) throw BAIL;
      if (n === 0 && this.isSeparator(this.line)) break;
      const c = this.text[this.starts[this.line]! + n];
      if (c === '-' && /[ \n]/.test(this.text[this.starts[this.line]! + n + 1] ?? '\n')) break;
    }
    return { value, pos: { o: firstStart, keys } };
  }

  private seq(n: number, depth: number, firstStart: number): { value: unknown; pos: PosNode } {
    const value: unknown[] = [];
    const items: PosNode[] = [];
    let first = true;
    for (;;) {
      const l = this.line;
      const dash = first ? firstStart : this.starts[l]! + n;
      first = false;
      let i = dash + 1;
      while (this.text[i] === ' ') i++;
      const itemCol = i - this.starts[l]!;
      let item: { value: unknown; pos: PosNode };
      if (i >= this.end(l) || this.text[i] === '#') {
        item = this.value(n, depth, l, i);
      } else if (this.text[i] === '-' && /[ \n]/.test(this.text[i + 1] ?? '\n')) {
        throw BAIL; // `- - x`
      } else {
        PLAIN_KEY.lastIndex = i;
        const m = PLAIN_KEY.exec(this.text);
        const after = m === null ? -1 : i + m[0].length;
        if (m !== null && this.text[after] === ':' && (after + 1 >= this.end(l) || this.text[after + 1] === ' ')) {
          // `- key: value`: a compact map whose keys sit at this column.
          item = this.block(itemCol, depth + 1, i);
          value.push(item.value);
          items.push(item.pos);
          if (this.continueSeq(n)) continue;
          break;
        }
        item = this.value(n, depth, l, i);
      }
      value.push(item.value);
      items.push(item.pos);
      if (!this.continueSeq(n)) break;
    }
    return { value, pos: { o: firstStart, items } };
  }

  private continueSeq(n: number): boolean {
    this.skipBlank();
    if (this.line >= this.lines) return false;
    const ind = this.indent(this.line);
    if (ind < n) return false;
    if (ind > n) throw BAIL;
    if (n === 0 && this.isSeparator(this.line)) return false;
    const s = this.starts[this.line]! + n;
    return this.text[s] === '-' && /[ \n]/.test(this.text[s + 1] ?? '\n');
  }

  /**
   * The value after `key:` or `- ` on line `l`, starting at offset `i`; the
   * owner's indentation is `n`. Leaves `this.line` after the value.
   */
  private value(n: number, depth: number, l: number, i: number): { value: unknown; pos: PosNode } {
    const end = this.end(l);
    const c = this.text[i];
    if (i >= end || c === '#') {
      // A nested block on the following lines.
      this.line = l + 1;
      this.skipBlank();
      if (this.line >= this.lines) throw BAIL; // a null value
      const ind = this.indent(this.line);
      const s = this.starts[this.line]! + ind;
      const isDash = this.text[s] === '-' && /[ \n]/.test(this.text[s + 1] ?? '\n');
      if (ind > n || (ind === n && isDash && this.isMapOwner(l, n))) {
        if (n === 0 && ind === 0 && this.isSeparator(this.line)) throw BAIL;
        return this.block(ind, depth + 1);
      }
      throw BAIL; // a null value
    }
    if (c === '|') return this.literal(n, l, i);
    if (c === '[' || c === '{') {
      const r = this.flow(i, end, depth + 1);
      let j = r.next;
      while (this.text[j] === ' ') j++;
      // A comment must be separated by white space (`]#` is an error for the full parser).
      if (j < end && (this.text[j] !== '#' || j === r.next)) throw BAIL;
      this.line = l + 1;
      this.noContinuation(n);
      return { value: r.value, pos: r.pos };
    }
    if (c === '"' || c === "'") {
      const r = this.quoted(i, end);
      let j = r.next;
      while (this.text[j] === ' ') j++;
      if (j < end && (this.text[j] !== '#' || j === r.next)) throw BAIL;
      this.line = l + 1;
      this.noContinuation(n);
      return { value: r.value, pos: { o: i, e: r.next, s: c === '"' ? 'QUOTE_DOUBLE' : 'QUOTE_SINGLE' } };
    }
    if ('>&*!?%@`,]}-:'.includes(c!)) {
      // `-x` and `:x` can be plain scalars, but they are rare enough to leave to the full parser.
      throw BAIL;
    }
    // A plain scalar to the end of the line (or a comment).
    let stop = i;
    // Up to a comment (` #`) or the end of the line; indexOf would scan the rest of the file.
    while (stop < end && !(this.text.charCodeAt(stop) === 35 && this.text.charCodeAt(stop - 1) === 32)) stop++;
    while (stop > i && this.text[stop - 1] === ' ') stop--;
    const raw = this.text.slice(i, stop);
    if (raw.includes(': ') || raw.endsWith(':')) throw BAIL;
    this.line = l + 1;
    this.noContinuation(n);
    const v = resolvePlain(raw);
    return { value: v, pos: typeof v === 'string' ? { o: i, e: stop, s: 'PLAIN' } : { o: i } };
  }

  /** Whether line `l` is a `key:` line (a sequence may then sit at the key's own indentation). */
  private isMapOwner(l: number, n: number): boolean {
    const s = this.starts[l]! + n;
    return !(this.text[s] === '-' && /[ \n]/.test(this.text[s + 1] ?? '\n'));
  }

  /** After a one-line value, a more indented line would continue it (multi-line scalar): not handled here. */
  private noContinuation(n: number): void {
    this.skipBlank();
    if (this.line < this.lines && this.indent(this.line) > n) throw BAIL;
  }

  private literal(n: number, l: number, i: number): { value: unknown; pos: PosNode } {
    const end = this.end(l);
    let j = i + 1;
    let strip = false;
    if (this.text[j] === '-') {
      strip = true;
      j++;
    }
    while (this.text[j] === ' ') j++;
    if (j < end) throw BAIL; // keep (+), explicit indentation, a comment: full parser
    const parts: string[] = [];
    let ci = -1;
    let last = l;
    let k = l + 1;
    for (; k < this.lines; k++) {
      const s = this.starts[k]!;
      const e = this.end(k);
      const ind = this.indent(k);
      if (s + ind >= e) {
        // An empty line; one with more spaces than the content indentation keeps them: full parser.
        if (ci >= 0 && ind > ci) throw BAIL;
        if (ci < 0 && ind > n) throw BAIL;
        parts.push('');
        continue;
      }
      if (ci < 0) {
        if (ind <= n) break;
        ci = ind;
      }
      if (ind < ci) break;
      parts.push(this.text.slice(s + ci, e));
      last = k;
    }
    if (ci < 0) throw BAIL; // an empty block scalar
    // Trailing empty lines are not content (clip keeps one newline, strip none).
    const content = parts.slice(0, last - l);
    const value = content.join('\n') + (strip ? '' : '\n');
    this.line = last + 1;
    this.skipBlank();
    if (this.line < this.lines && this.indent(this.line) > n) throw BAIL;
    return { value, pos: { o: i, e: this.end(last), s: 'BLOCK_LITERAL' } };
  }

  private quoted(i: number, end: number): { value: string; next: number } {
    const q = this.text[i]!;
    let out = '';
    let j = i + 1;
    for (;;) {
      if (j >= end) throw BAIL; // multi-line quoted scalar
      const c = this.text[j]!;
      if (c === q) {
        if (q === "'" && this.text[j + 1] === "'") {
          out += "'";
          j += 2;
          continue;
        }
        return { value: out, next: j + 1 };
      }
      if (q === '"' && c === '\\') {
        const e = this.text[j + 1];
        const map: Record<string, string> = { '\\': '\\', '"': '"', n: '\n', t: '\t', '/': '/' };
        const r = e === undefined ? undefined : map[e];
        if (r === undefined) throw BAIL;
        out += r;
        j += 2;
        continue;
      }
      out += c;
      j++;
    }
  }

  /** A flow collection that opens and closes on this line. */
  private flow(i: number, end: number, depth: number): { value: unknown; pos: PosNode; next: number } {
    if (depth >= this.maxDepth) throw BAIL;
    const open = this.text[i]!;
    const close = open === '[' ? ']' : '}';
    const list: unknown[] = [];
    const items: PosNode[] = [];
    const map: Record<string, unknown> = {};
    const keys = new Map<string, { k: number; v: PosNode }>();
    let j = i + 1;
    const skip = (): void => {
      while (this.text[j] === ' ') j++;
    };
    skip();
    if (this.text[j] === close) return { value: open === '[' ? list : map, pos: open === '[' ? { o: i, items } : { o: i, keys }, next: j + 1 };
    for (;;) {
      skip();
      if (j >= end) throw BAIL;
      let keyAt = -1;
      let key = '';
      if (open === '{') {
        PLAIN_KEY.lastIndex = j;
        const m = PLAIN_KEY.exec(this.text);
        if (m === null) throw BAIL;
        key = m[0];
        keyAt = j;
        j += key.length;
        if (this.text[j] !== ':' || this.text[j + 1] !== ' ') throw BAIL;
        if (keys.has(key) || FORBIDDEN_KEYS.has(key) || NON_STRING_KEYS.has(key) || key === '<<') throw BAIL;
        j += 2;
        skip();
      }
      const c = this.text[j];
      let v: unknown;
      let pos: PosNode;
      if (c === '[' || c === '{') {
        const r = this.flow(j, end, depth + 1);
        v = r.value;
        pos = r.pos;
        j = r.next;
      } else if (c === '"' || c === "'") {
        const r = this.quoted(j, end);
        v = r.value;
        pos = { o: j, e: r.next, s: c === '"' ? 'QUOTE_DOUBLE' : 'QUOTE_SINGLE' };
        j = r.next;
      } else {
        let k = j;
        while (k < end && !',[]{}'.includes(this.text[k]!) && !(this.text[k] === '#' && this.text[k - 1] === ' ')) k++;
        let stop = k;
        while (stop > j && this.text[stop - 1] === ' ') stop--;
        const raw = this.text.slice(j, stop);
        if (raw === '' || raw.includes(': ') || raw.endsWith(':') || '&*!?%@`|>-:#'.includes(raw[0]!)) throw BAIL;
        v = resolvePlain(raw);
        pos = typeof v === 'string' ? { o: j, e: stop, s: 'PLAIN' } : { o: j };
        j = k;
      }
      if (open === '[') {
        list.push(v);
        items.push(pos);
      } else {
        map[key] = v;
        keys.set(key, { k: keyAt, v: pos });
      }
      skip();
      if (this.text[j] === ',') {
        j++;
        skip();
        if (this.text[j] === close) throw BAIL; // trailing comma
        continue;
      }
      if (this.text[j] === close) return { value: open === '[' ? list : map, pos: open === '[' ? { o: i, items } : { o: i, keys }, next: j + 1 };
      throw BAIL;
    }
  }
}

/** YAML 1.2 core schema, for the plain scalars the fast path accepts; anything numeric-looking but unusual bails. */
function resolvePlain(raw: string): unknown {
  switch (raw) {
    case 'true':
    case 'True':
    case 'TRUE':
      return true;
    case 'false':
    case 'False':
    case 'FALSE':
      return false;
    case 'null':
    case 'Null':
    case 'NULL':
    case '~':
      throw BAIL;
  }
  if (/^[0-9]{1,15}$/.test(raw)) return Number(raw);
  // Anything else that may read as a number (floats, 0x…, 0o…, .inf, .nan, signs) is left to the full parser.
  if (/^[-+]?(\.?[0-9]|\.(inf|Inf|INF|nan|NaN|NAN)$)/.test(raw)) throw BAIL;
  return raw;
}

/** The map key that starts at `offset` (a duplicate's), quoted for a message: as read, quotes and escapes undone, as the compiler sees it. */
function keyAt(doc: Document.Parsed, offset: number): string {
  let key = '';
  yaml().visit(doc, {
    Scalar(at, node) {
      if (at !== 'key' || node.range?.[0] !== offset) return undefined;
      key = String(node.value);
      return yaml().visit.BREAK;
    },
  });
  return JSON.stringify(key.length > 60 ? `${key.slice(0, 60)}…` : key);
}

/**
 * The first alias, in source order, inside the value its anchor names (`size` undefined: a value that
 * holds itself), or past which the aliases expand to more than `budget.left` nodes and string
 * characters (less each alias's size, an alias within an aliased value counted in it); undefined if
 * none. One pass: each alias resolved as it is met, each anchored value sized once.
 */
function expandingAlias(doc: Document.Parsed, budget: { left: number }): { alias: Alias; size?: number } | undefined {
  const anchors = new Map<string, YamlNode>();
  const aliasSizes = new Map<Alias, number>();
  const anchoredSizes = new Map<YamlNode, number>();
  // An alias within is one met before (the value is set before the alias that copies it, and holds no
  // alias of itself): its size is known.
  const sizeOf = (node: YamlNode | null | undefined): number => {
    if (node === null || node === undefined) return 0;
    if (yaml().isAlias(node)) return aliasSizes.get(node) ?? 0;
    const known = anchoredSizes.get(node);
    if (known !== undefined) return known;
    let size = 1;
    if (yaml().isMap(node)) for (const p of node.items as Pair<YamlNode, YamlNode>[]) size += sizeOf(p.key) + sizeOf(p.value);
    else if (yaml().isSeq(node)) for (const item of node.items as YamlNode[]) size += sizeOf(item);
    else if (yaml().isScalar(node) && typeof node.value === 'string') size += node.value.length;
    if (node.anchor !== undefined) anchoredSizes.set(node, size);
    return size;
  };
  let found: { alias: Alias; size?: number } | undefined;
  yaml().visit(doc, {
    Node(_key, node, path) {
      if (!yaml().isAlias(node)) {
        if (node.anchor !== undefined) anchors.set(node.anchor, node);
        return undefined;
      }
      const target = anchors.get(node.source);
      // An alias of no anchor is `unknown-alias`, said when the value is read.
      if (target === undefined) return undefined;
      if (path.includes(target)) {
        found = { alias: node };
        return yaml().visit.BREAK;
      }
      const size = sizeOf(target);
      aliasSizes.set(node, size);
      budget.left -= size;
      if (budget.left >= 0) return undefined;
      found = { alias: node, size };
      return yaml().visit.BREAK;
    },
  });
  return found;
}

/** The first alias (of those `which` picks) in the document's values, in source order. */
function firstAlias(root: YamlNode, which: (alias: Alias) => boolean = () => true): Alias | undefined {
  const stack: YamlNode[] = [root];
  let first: Alias | undefined;
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (yaml().isAlias(node)) {
      const o = node.range?.[0];
      if (o !== undefined && which(node) && (first === undefined || o < first.range![0])) first = node;
    } else if (yaml().isMap(node)) {
      for (const p of node.items as Pair<YamlNode, YamlNode>[]) if (p.value !== null && p.value !== undefined) stack.push(p.value);
    } else if (yaml().isSeq(node)) {
      for (const item of node.items as YamlNode[]) if (item !== null) stack.push(item);
    }
  }
  return first;
}

/**
 * Offset in a scalar's source of character `index` of its value: exact for
 * plain and quoted scalars on one line and literal block scalars; for the
 * others (folded, a plain or quoted scalar over several lines, escapes) the
 * source is decoded as YAML reads it, which is exact wherever that gives the
 * value back; failing that, for the start of a `${…}` reference written
 * whole on one line, found as the same occurrence of that text in the
 * source. Undefined otherwise (the caller points at the scalar's start).
 */
export function scalarOffset(raw: string, type: string | undefined, value: string, index: number): number | undefined {
  if (index < 0 || index > value.length) return undefined;
  return exactScalarOffset(raw, type, value, index) ?? decodedScalarOffset(raw, type, value, index) ?? referenceOffset(raw, value, index);
}

/** A scalar's value as decoded from its source, with the source offset of each character (and one past the last). */
interface Decoded {
  text: string;
  readonly at: number[];
}

/**
 * The offset of character `index` found by decoding the source (`decodeFlow`,
 * `decodeBlock`), checked against the value the parser read: where the
 * decoding does not give that value back (a construct it does not follow, an
 * indentation indicator), undefined, never a wrong place. A block scalar's
 * final line breaks (its chomping) are left out of the check: nothing
 * points into them.
 */
function decodedScalarOffset(raw: string, type: string | undefined, value: string, index: number): number | undefined {
  let decoded: Decoded | undefined;
  let want = value;
  switch (type) {
    case 'PLAIN':
    case 'QUOTE_SINGLE':
    case 'QUOTE_DOUBLE':
      decoded = decodeFlow(raw, type);
      break;
    case 'BLOCK_LITERAL':
    case 'BLOCK_FOLDED':
      decoded = decodeBlock(raw, type === 'BLOCK_FOLDED');
      if (decoded !== undefined) {
        decoded.text = decoded.text.replace(/\n+$/, '');
        want = value.replace(/\n+$/, '');
      }
      break;
    default:
      return undefined;
  }
  if (decoded === undefined || decoded.text !== want || index > want.length) return undefined;
  return decoded.at[index];
}

/** Double-quoted escapes of one character: what each stands for. */
const ESCAPES: Readonly<Record<string, string>> = {
  '0': '\0', a: '\x07', b: '\b', t: '\t', '\t': '\t', n: '\n', v: '\v', f: '\f', r: '\r', e: '\x1b',
  ' ': ' ', '"': '"', '/': '/', '\\': '\\', N: '\x85', _: '\xa0', L: '\u2028', P: '\u2029',
};
const HEX_DIGITS: Readonly<Record<string, number>> = { x: 2, u: 4, U: 8 };

/**
 * A plain or quoted scalar's source decoded: escapes (double-quoted), `''`
 * (single-quoted), and line folding (a line break and the white space
 * around it read as one space, or as one newline per empty line between).
 */
function decodeFlow(raw: string, type: 'PLAIN' | 'QUOTE_SINGLE' | 'QUOTE_DOUBLE'): Decoded | undefined {
  const quoted = type !== 'PLAIN';
  if (quoted && (raw.length < 2 || raw[raw.length - 1] !== raw[0])) return undefined;
  const end = quoted ? raw.length - 1 : raw.length;
  const out: Decoded = { text: '', at: [] };
  const emit = (s: string, offset: number): void => {
    out.text += s;
    for (let k = 0; k < s.length; k++) out.at.push(offset);
  };
  // Where trailing white space may be trimmed back to: not into escapes or a fold.
  let kept = 0;
  const isBreak = (c: string | undefined): boolean => c === '\n' || c === '\r';
  const skipBreak = (j: number): number => j + (raw[j] === '\r' && raw[j + 1] === '\n' ? 2 : 1);
  const skipBlanks = (j: number): number => {
    let k = j;
    while (k < end && (raw[k] === ' ' || raw[k] === '\t')) k++;
    return k;
  };
  let i = quoted ? 1 : 0;
  while (i < end) {
    const c = raw[i]!;
    if (isBreak(c)) {
      while (out.text.length > kept && /[ \t]$/.test(out.text)) {
        out.text = out.text.slice(0, -1);
        out.at.pop();
      }
      let breaks = 0;
      let j = skipBlanks(skipBreak(i));
      while (j < end && isBreak(raw[j])) {
        breaks++;
        j = skipBlanks(skipBreak(j));
      }
      emit(breaks === 0 ? ' ' : '\n'.repeat(breaks), i);
      kept = out.text.length;
      i = j;
    } else if (type === 'QUOTE_SINGLE' && c === "'") {
      if (raw[i + 1] !== "'") return undefined;
      emit("'", i);
      i += 2;
    } else if (type === 'QUOTE_DOUBLE' && c === '\\') {
      const n = raw[i + 1];
      if (isBreak(n)) {
        // An escaped line break: nothing, and the next line's leading white space neither.
        kept = out.text.length;
        i = skipBlanks(skipBreak(i + 1));
        continue;
      }
      const digits = n === undefined ? 0 : (HEX_DIGITS[n] ?? 0);
      let ch: string | undefined;
      if (digits > 0) {
        const hex = raw.slice(i + 2, i + 2 + digits);
        const code = /^[0-9a-fA-F]+$/.test(hex) && hex.length === digits ? Number.parseInt(hex, 16) : Number.NaN;
        ch = code <= 0x10ffff ? String.fromCodePoint(code) : undefined;
      } else if (n !== undefined && Object.hasOwn(ESCAPES, n)) {
        ch = ESCAPES[n];
      }
      if (ch === undefined) return undefined;
      emit(ch, i);
      kept = out.text.length;
      i += 2 + digits;
    } else {
      emit(c, i);
      i++;
    }
  }
  out.at.push(i);
  return out;
}

/** A block scalar's empty line: spaces alone (a `\r` of a CRLF file aside). */
const SPACES_ONLY = /^ *\r?$/;

/**
 * A block scalar's source decoded (header, then lines at the indentation
 * of the first one that is not empty): a literal one keeps its line breaks;
 * a folded one reads a break between two lines of text as a space, keeps
 * those around more-indented lines, and each empty line between as one.
 */
function decodeBlock(raw: string, folded: boolean): Decoded | undefined {
  const header = raw.indexOf('\n');
  if (header === -1) return undefined;
  const lines: { readonly text: string; readonly offset: number }[] = [];
  for (let offset = header + 1; offset <= raw.length; ) {
    const next = raw.indexOf('\n', offset);
    const line = raw.slice(offset, next === -1 ? raw.length : next);
    lines.push({ text: line.endsWith('\r') ? line.slice(0, -1) : line, offset });
    if (next === -1) break;
    offset = next + 1;
  }
  // Empty: spaces alone. A tab is never indentation, so a line of spaces and a tab is text (a tab).
  const first = lines.find((l) => !SPACES_ONLY.test(l.text));
  if (first === undefined) return undefined;
  const indent = /^ */.exec(first.text)![0].length;
  const out: Decoded = { text: '', at: [] };
  const emit = (s: string, offset: number): void => {
    out.text += s;
    for (let k = 0; k < s.length; k++) out.at.push(offset);
  };
  let previous: 'none' | 'text' | 'more' = 'none';
  let empty = 0;
  let lastEnd = 0;
  for (const { text, offset } of lines) {
    if (text.length <= indent && SPACES_ONLY.test(text)) {
      if (!folded || previous === 'none') emit('\n', offset + text.length);
      else empty++;
      continue;
    }
    const content = text.slice(indent);
    if (folded) {
      const kind = content.startsWith(' ') || content.startsWith('\t') ? 'more' : 'text';
      if (previous !== 'none') emit(previous === 'text' && kind === 'text' ? (empty === 0 ? ' ' : '\n'.repeat(empty)) : '\n'.repeat(empty + 1), lastEnd);
      previous = kind;
      empty = 0;
    }
    for (let k = 0; k < content.length; k++) emit(content[k]!, offset + indent + k);
    lastEnd = offset + text.length;
    if (!folded) emit('\n', lastEnd);
  }
  // One past the last character: the end of the last line of text (the decoded text's final breaks are left out).
  const trimmed = out.text.replace(/\n+$/, '').length;
  out.at.length = trimmed;
  out.at.push(trimmed === 0 ? header + 1 : lastEnd);
  out.text = out.text.slice(0, trimmed);
  return out;
}

/** Where the `${…}` starting at `index` of the value is in the source: its text, at the same occurrence. */
function referenceOffset(raw: string, value: string, index: number): number | undefined {
  if (!value.startsWith('${', index)) return undefined;
  const end = value.indexOf('}', index);
  if (end === -1) return undefined;
  const reference = value.slice(index, end + 1);
  let nth = 0;
  for (let i = value.indexOf('${'); i !== -1 && i < index; i = value.indexOf('${', i + 2)) nth++;
  let at = raw.indexOf('${');
  for (; at !== -1 && nth > 0; nth--) at = raw.indexOf('${', at + 2);
  // Written otherwise in the source (an escape in it, folded across a line): no place to point at.
  return at !== -1 && raw.startsWith(reference, at) ? at : undefined;
}

function exactScalarOffset(raw: string, type: string | undefined, value: string, index: number): number | undefined {
  switch (type) {
    // The character there must be the value's too: a line folded after trailing blanks has the same text before it.
    case 'PLAIN':
      return raw.slice(0, index) === value.slice(0, index) && (index === value.length ? raw.length === index : raw[index] === value[index]) ? index : undefined;
    case 'QUOTE_DOUBLE':
    case 'QUOTE_SINGLE': {
      let i = 1;
      for (let seen = 0; seen < index; seen++) {
        const c = raw[i];
        if (c === undefined || c === '\n' || (type === 'QUOTE_DOUBLE' && c === '\\')) return undefined;
        i += type === 'QUOTE_SINGLE' && c === "'" && raw[i + 1] === "'" ? 2 : 1;
      }
      return (index === value.length ? i === raw.length - 1 : raw[i] === value[index]) ? i : undefined;
    }
    case 'BLOCK_LITERAL': {
      const header = raw.indexOf('\n');
      if (header === -1 || /[1-9]/.test(raw.slice(0, header))) return undefined;
      const lines = raw.slice(header + 1).split('\n');
      const indent = /^ */.exec(lines.find((l) => !SPACES_ONLY.test(l)) ?? '')![0].length;
      const before = value.slice(0, index).split('\n');
      const line = before.length - 1;
      // Past the last content line (after the final newline) there is no character to point at.
      const contentLines = value.split('\n').length - (value.endsWith('\n') ? 1 : 0);
      if (line >= contentLines) return undefined;
      let offset = header + 1;
      for (let l = 0; l < line; l++) offset += (lines[l]?.length ?? 0) + 1;
      return lines[line] === undefined ? undefined : offset + indent + before[line]!.length;
    }
    default:
      return undefined;
  }
}

/** Where the tag written before the node at `offset` starts (the node itself if none is found). */
function tagStart(text: string, offset: number): number {
  let i = offset;
  while (i > 0 && (text[i - 1] === ' ' || text[i - 1] === '\t')) i--;
  let j = i;
  // Back over the tag's characters, to a space, a line's start or a flow collection's `[`, `{`, `,`.
  while (j > 0 && !/[\s[{,]/.test(text[j - 1]!)) j--;
  return j < i && text[j] === '!' ? j : offset;
}

/**
 * Reads a node with a custom tag (reported) as if it had none, so that the rest of its document is
 * compiled: a scalar as the text written (`!!timestamp 2001-12-14` is the string, not a Date), a
 * collection as it is.
 */
function untag(node: YamlNode): void {
  node.tag = undefined;
  if (yaml().isScalar(node) && typeof node.source === 'string') node.value = node.source;
}

/** Spells a resolved tag as the user wrote it: `!!python/object`, `!foo`. */
function showTag(tag: string): string {
  return tag.startsWith('tag:yaml.org,2002:') ? `!!${tag.slice('tag:yaml.org,2002:'.length)}` : tag;
}

/**
 * A cheap, linear scan run before the (recursive) parser: the offset where
 * nesting first gets absurdly deep, if it does. Flow nesting (`[`, `{`
 * outside quotes) is held to `maxDepth`; block nesting is estimated from
 * indentation and leading `- `, and held to twice `maxDepth` so that the
 * exact check after parsing reports ordinary cases at the right node.
 */
export function nestingGuard(text: string, maxDepth: number): number | undefined {
  let flow = 0;
  let quote: '"' | "'" | undefined;
  let blockScalarIndent = -1;
  const indents: number[] = [];
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    let indent = 0;
    while (text.charCodeAt(lineStart + indent) === 32) indent++;
    const contentStart = lineStart + indent;
    const blank = contentStart >= lineEnd || text[contentStart] === '\r';
    if (blockScalarIndent >= 0 && quote === undefined && (blank || indent > blockScalarIndent)) {
      lineStart = lineEnd + 1;
      continue;
    }
    blockScalarIndent = -1;
    if (flow === 0 && quote === undefined && !blank && text[contentStart] !== '#') {
      while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
      let dashes = 0;
      let i = contentStart;
      while (text[i] === '-' && (text[i + 1] === ' ' || text[i + 1] === '\t')) {
        dashes++;
        i += 2;
        while (text[i] === ' ' || text[i] === '\t') i++;
      }
      if (indents.length + dashes > 2 * maxDepth) return contentStart;
    }
    let prev = ' ';
    let lastSignificant = -1;
    for (let i = contentStart; i < lineEnd; i++) {
      const c = text[i]!;
      if (quote !== undefined) {
        if (c === '\\' && quote === '"') i++;
        else if (c === quote) quote = undefined;
        prev = c;
        continue;
      }
      if (c === '#' && (prev === ' ' || prev === '\t' || i === contentStart)) break;
      // A quote opens a scalar only where a scalar can start; `it's` is plain text.
      if ((c === '"' || c === "'") && /[\s[{,:-]/.test(prev)) quote = c;
      else if (c === '[' || c === '{') {
        if (++flow > maxDepth) return i;
      } else if ((c === ']' || c === '}') && flow > 0) flow--;
      if (c !== ' ' && c !== '\t' && c !== '\r') lastSignificant = i;
      prev = c;
    }
    if (flow === 0 && quote === undefined && lastSignificant >= 0) {
      const tail = text.slice(contentStart, lastSignificant + 1);
      if (/(^|[\s:-])[|>][1-9+-]{0,2}$/.test(tail)) blockScalarIndent = indent;
    }
    lineStart = lineEnd + 1;
  }
  return undefined;
}

/** How goal text is parsed: YAML 1.2's core schema, no merge keys, a duplicate key an error. */
const PARSE_OPTIONS = {
  version: '1.2',
  schema: 'core',
  merge: false,
  uniqueKeys: true,
  strict: true,
  prettyErrors: false,
  keepSourceTokens: false,
} as const;

/**
 * The value of document `index` of `text` with its merge keys merged as YAML 1.1 would, or undefined if
 * they cannot be: what the rest of a document refused for its merge keys is checked on, so that its
 * other problems are reported with them and no problem the merge would have solved (a field it brings).
 */
function mergedValue(text: string, index: number, limits: LoadLimits): unknown {
  try {
    const doc = (yaml().parseAllDocuments(text, { ...PARSE_OPTIONS, merge: true }) as Document.Parsed[])[index];
    if (doc === undefined || doc.errors.length > 0) return undefined;
    return doc.toJS({ maxAliasCount: limits.maxAliasCount });
  } catch {
    return undefined;
  }
}

/**
 * Structural checks the parser does not make; false if the document must be refused. A custom tag is an
 * error that leaves the document whole (the value is read as if untagged), so it does not refuse it; nor
 * does a merge key (`found.merges`), taken out of the tree, so that the document's other problems are
 * reported with it, as every problem is (on its value merged, `mergedValue`, or else without the key);
 * nor a forbidden key (`found.forbidden`), taken out too, never merged back.
 * A whole number written past what its value tells goes to `found.inexact` (`SourceDocument.inexactNumbers`).
 */
function checkTree(
  root: YamlNode,
  text: string,
  limits: LoadLimits,
  at: (offset: number) => SourceLocation,
  problem: (loc: SourceLocation, code: string, message: string) => void,
  where: string,
  found: { merges: boolean; forbidden: boolean; readonly inexact: Diagnostic[] },
): boolean {
  let ok = true;
  const stack: { node: YamlNode; depth: number }[] = [{ node: root, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    const offset = node.range?.[0] ?? 0;
    if (depth > limits.maxDepth) {
      problem(at(offset), 'too-deep', `nesting deeper than ${limits.maxDepth} levels`);
      return false;
    }
    if (yaml().isAlias(node)) continue;
    if (node.tag !== undefined && !CORE_TAGS.has(node.tag)) {
      problem(at(tagStart(text, offset)), 'custom-tag', `custom tag ${showTag(node.tag)} is not allowed in ${where}`);
      untag(node);
    }
    if (yaml().isMap(node)) {
      let dropped = false;
      for (const item of node.items as Pair<YamlNode, YamlNode>[]) {
        const key = item.key;
        if (yaml().isScalar(key)) {
          const k = String(key.value);
          if (k === '<<') {
            problem(at(key.range?.[0] ?? offset), 'merge-key', `merge keys (<<) are not allowed in ${where}; write the fields out`);
            dropped = found.merges = true;
            // Its value is checked all the same (a forbidden key in it, its depth).
            if (item.value !== null && item.value !== undefined) stack.push({ node: item.value, depth: depth + 1 });
            continue;
          } else if (FORBIDDEN_KEYS.has(k)) {
            problem(at(key.range?.[0] ?? offset), 'forbidden-key', `key "${k}" is not allowed: __proto__, constructor and prototype name a JavaScript object's own machinery, which goal data must never reach; use another name`);
            dropped = found.forbidden = true;
          }
          if (key.tag !== undefined && !CORE_TAGS.has(key.tag)) {
            problem(at(tagStart(text, key.range?.[0] ?? offset)), 'custom-tag', `custom tag ${showTag(key.tag)} is not allowed in ${where}`);
            untag(key);
          }
        } else if (key !== null && key !== undefined) {
          problem(at(key.range?.[0] ?? offset), 'complex-key', 'map keys must be plain strings');
          ok = false;
        }
        if (item.value !== null && item.value !== undefined) stack.push({ node: item.value, depth: depth + 1 });
      }
      if (dropped) node.items = (node.items as Pair<YamlNode, YamlNode>[]).filter((item) => !(yaml().isScalar(item.key) && (String(item.key.value) === '<<' || FORBIDDEN_KEYS.has(String(item.key.value)))));
    } else if (yaml().isSeq(node)) {
      for (const item of node.items as YamlNode[]) if (item !== null) stack.push({ node: item, depth: depth + 1 });
    } else if (yaml().isScalar(node) && typeof node.value === 'number') {
      // A whole number written in digits from 1e21 on: the double it is read as cannot say so
      // (`inexactNumber`), and it would go on as a float, maybe another number (1234567890123456789012
      // as 1.2345678901234568e+21). Below, the value says it, and the field's own check names it.
      // Said by the compiler (`SourceDocument.inexactNumbers`), unless the field refuses the value itself.
      const v = node.value;
      const written = node.source ?? String(v);
      if (inexactNumber(v) === undefined && inexactNumber(v, written) !== undefined) {
        found.inexact.push({
          ...at(offset),
          severity: 'error',
          code: 'invalid-value',
          message: `${written} is a whole number beyond ±9007199254740991 (2^53−1), read as the nearest double, ${JSON.stringify(v)}, which may not be the number written: a string ("${written}") keeps it as written`,
        });
      }
    }
  }
  return ok;
}

function nodeAt(root: YamlNode, path: readonly PathKey[]): { key?: YamlNode; value: YamlNode } {
  let current: YamlNode = root;
  let key: YamlNode | undefined;
  for (const step of path) {
    if (yaml().isMap(current)) {
      // The last of duplicate keys (an error of its own): its value is the one compiled.
      const pair = (current.items as Pair<YamlNode, YamlNode>[]).findLast(
        (p) => yaml().isPair(p) && yaml().isScalar(p.key) && String(p.key.value) === String(step),
      );
      if (pair === undefined) return key === undefined ? { value: current } : { key, value: current };
      key = pair.key ?? undefined;
      if (pair.value === null || pair.value === undefined) return key === undefined ? { value: current } : { key, value: key };
      current = pair.value;
    } else if (yaml().isSeq(current) && typeof step === 'number') {
      const item = current.items[step] as YamlNode | undefined;
      if (item === undefined || item === null) break;
      key = item;
      current = item;
    } else {
      break;
    }
  }
  return key === undefined ? { value: current } : { key, value: current };
}

/**
 * Reads every `*.yaml` / `*.yml` file under `dir`, recursively, in sorted
 * order. Non-UTF-8 and oversized files are refused with a diagnostic.
 */
export async function loadGoalDirectory(
  dir: string,
  options: { limits?: LoadLimits; displayRoot?: string } = {},
): Promise<{ documents: SourceDocument[]; diagnostics: Diagnostic[]; files: string[] }> {
  return parseGoalSources(await readGoalSources(dir, options), options.limits);
}

/** A goal file as read: its bytes, or the errors that say why it cannot be read as goals. */
export type GoalFileBytes = { readonly file: string; readonly shown: string } & ({ readonly bytes: Buffer } | { readonly diagnostics: Diagnostic[] });

/**
 * A goal directory read once, not yet parsed (`parseGoalSources`): the compiled-goal cache keys a
 * compile by the very bytes it compiles, never by a second read that a file changed in between (an
 * editor's save, a checkout) would make another revision's.
 */
export interface GoalSources {
  readonly files: string[];
  /** Each of `files`, in order, as read; none when there are more than the limit allows. */
  readonly read: readonly GoalFileBytes[];
  /** The directory's own errors: a directory below it that cannot be read, too many files. */
  readonly diagnostics: readonly Diagnostic[];
}

/** Reads the goal files under `dir` (`listGoalFiles`), each once; paths in diagnostics are shown relative to `displayRoot`. */
export async function readGoalSources(dir: string, options: { limits?: LoadLimits; displayRoot?: string } = {}): Promise<GoalSources> {
  const limits = options.limits ?? defaultLoadLimits;
  const displayRoot = options.displayRoot ?? process.cwd();
  const { files, unreadable } = await listGoalFiles(dir);
  // A directory below `dir` that cannot be read may hold goals: an error at it (the revision refused, as
  // one that does not compile), never its goals taken for removed (with prune, their nodes deleted).
  const diagnostics: Diagnostic[] = unreadable.map((u) => ({
    file: displayPath(u.path, displayRoot),
    line: 0,
    col: 0,
    severity: 'error',
    code: 'unreadable-directory',
    message: `cannot read goal directory: ${whyUnreadable(u.error)}`,
  }));
  if (files.length > limits.maxFiles) {
    diagnostics.push({ file: displayPath(dir, displayRoot), line: 0, col: 0, severity: 'error', code: 'too-many-files', message: `more than ${limits.maxFiles} goal files` });
    return { files, read: [], diagnostics };
  }
  const read: GoalFileBytes[] = [];
  for (const file of files) read.push(await readGoalBytes(file, displayPath(file, displayRoot), limits));
  return { files, read, diagnostics };
}

/** Parses goal files as read (`readGoalSources`): their documents, and the errors of the directory and of each file. */
export function parseGoalSources(sources: GoalSources, limits: LoadLimits = defaultLoadLimits): { documents: SourceDocument[]; diagnostics: Diagnostic[]; files: string[] } {
  const documents: SourceDocument[] = [];
  const diagnostics = [...sources.diagnostics];
  for (const r of sources.read) {
    const parsed = 'bytes' in r ? parseGoalBytes(r.shown, r.bytes, limits) : { documents: [], diagnostics: r.diagnostics };
    documents.push(...parsed.documents);
    diagnostics.push(...parsed.diagnostics);
  }
  return { documents, diagnostics, files: sources.files };
}

/** A goal file's bytes, or why they cannot be goals: what is not a regular file is never opened, one past the size limit never read. */
async function readGoalBytes(file: string, shown: string, limits: LoadLimits): Promise<GoalFileBytes> {
  const refused = (code: string, message: string): GoalFileBytes => ({ file, shown, diagnostics: [{ file: shown, line: 1, col: 1, severity: 'error', code, message }] });
  const unreadable = (err: unknown): GoalFileBytes => refused('unreadable-file', `cannot read goal file: ${whyUnreadable(err)}`);
  let info: Stats;
  try {
    // Sync: an await per file is a thread-pool round trip, on every command over goals split in many files.
    info = statSync(file);
  } catch (err) {
    return unreadable(err);
  }
  if (!info.isFile()) {
    // Never opened: a FIFO would wait for a writer forever.
    const hint = info.isDirectory() ? ' (a directory named *.yaml or *.yml is not read as goals: rename it)' : '';
    return refused('not-a-file', `goal file is ${specialFileKind(info)}, not a regular file${hint}`);
  }
  if (info.size > limits.maxFileBytes) return refused('file-too-large', `goal file is ${info.size} bytes; the limit is ${limits.maxFileBytes}`);
  try {
    return { file, shown, bytes: await readFile(file) };
  } catch (err) {
    return unreadable(err);
  }
}

/** Parses a goal file's bytes, shown as `shown`: UTF-8 only. */
function parseGoalBytes(shown: string, bytes: Buffer, limits: LoadLimits): { documents: SourceDocument[]; diagnostics: Diagnostic[] } {
  const text = decodeUtf8(bytes);
  if (typeof text !== 'string') {
    const byte = `0x${text.byte.toString(16).padStart(2, '0')}`;
    return { documents: [], diagnostics: [{ file: shown, line: text.line, col: text.col, severity: 'error', code: 'not-utf8', message: `goal file is not valid UTF-8 (byte ${byte}); save it as UTF-8` }] };
  }
  return parseGoalText(shown, text, limits);
}

/** Why a goal file could not be read, in words, with the system's code. */
function whyUnreadable(err: unknown): string {
  return systemReason(err, { ENOENT: 'it is a symbolic link to nothing', ELOOP: 'it is a loop of symbolic links', EISDIR: 'it is a directory' });
}

/** The text, or the line and column (in characters) of the first byte that is not UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | { line: number; col: number; byte: number } {
  try {
    let text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return text;
  } catch {
    const bad = firstInvalidUtf8(bytes);
    // Everything before the bad byte is valid, so it decodes exactly.
    const before = new TextDecoder('utf-8').decode(bytes.subarray(0, bad));
    const lineStart = before.lastIndexOf('\n') + 1;
    let line = 1;
    for (let i = 0; i < lineStart; i++) if (before.charCodeAt(i) === 10) line++;
    const col = [...before.slice(lineStart)].length + 1;
    return { line, col, byte: bytes[bad] ?? 0 };
  }
}

/** Byte offset of the first ill-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined) return i;
      if (k === 1 ? d < lo || d > hi : d < 0x80 || d > 0xbf) return i;
    }
    i += n + 1;
  }
  return b.length;
}

export function displayPath(abs: string, root: string): string {
  const rel = relative(root, abs);
  // The root itself (`--goals .`) is ".", never an empty name.
  if (rel === '') return '.';
  return rel.startsWith('..') ? abs : rel.split(sep).join('/');
}

/**
 * The goal files under `dir` (`*.yaml`, `*.yml`, recursively, dot entries skipped), sorted: what
 * `loadGoalDirectory` reads; and the directories below `dir` that could not be read (`GoalTree`).
 */
export async function listGoalFiles(dir: string): Promise<{ files: string[]; unreadable: GoalTree['unreadable'] }> {
  const tree = await walkGoalTree(dir);
  return { files: [...tree.files].sort(), unreadable: tree.unreadable };
}

/** A goal directory as one walk found it. */
export interface GoalTree {
  /** The goal files: `*.yaml` and `*.yml`, any case. */
  readonly files: readonly string[];
  /** The directories walked: `dir` itself first, then every one below it. */
  readonly directories: readonly string[];
  /** The directories below `dir` (or links to one) that could not be read, with the error: what goal files they hold is not known. */
  readonly unreadable: readonly { readonly path: string; readonly error: unknown }[];
}

const GOAL_FILE = /\.ya?ml$/i;

/** Whether an entry named `name` is a goal file to the loader (`*.yaml`, `*.yml`, any case), whatever it is; dot files aside. */
export function isGoalFileName(name: string): boolean {
  return GOAL_FILE.test(name) && !name.startsWith('.');
}

/**
 * Walks the tree under `dir` once, skipping entries whose name starts with a
 * dot (editors' swap files, `.git`), each directory's entries in name order.
 * Symbolic links are followed; a directory reached again through one (a
 * loop) is walked once. Anything named `*.yaml` / `*.yml` that is not a
 * regular file — a directory, a link to nothing, a FIFO — is listed, for the
 * loader to refuse at that file.
 * Throws when `dir` itself cannot be read; a directory below it that cannot
 * be read (a permission) is listed in `unreadable`. The one rule for which
 * files are goals: the loader, the compiled-goal cache and the daemon's goal
 * watch all go through here.
 */
export async function walkGoalTree(dir: string): Promise<GoalTree> {
  const files: string[] = [];
  const directories: string[] = [];
  const unreadable: { path: string; error: unknown }[] = [];
  const seen = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    let entries: Dirent[];
    try {
      const real = await realpath(d);
      if (seen.has(real)) return;
      seen.add(real);
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      if (d === dir) throw err;
      unreadable.push({ path: d, error: err });
      return;
    }
    directories.push(d);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      // Named as a goal file, it is one, whatever it is: a directory put in a goal file's place is
      // refused at that name, never read as the goal removed (its nodes would be let go, or deleted).
      if (GOAL_FILE.test(e.name)) {
        files.push(p);
        continue;
      }
      const target = e.isSymbolicLink() ? await stat(p).catch((err: unknown) => linkNotFollowed(p, err, unreadable)) : e;
      if (target?.isDirectory() === true) await walk(p);
    }
  };
  await walk(dir);
  return { files, directories, unreadable };
}

/**
 * A symbolic link `stat` could not follow: a link to nothing (or a loop) is no directory, and is passed
 * over; one whose target may not be looked at (a permission) may be a directory of goals, and is listed
 * in `unreadable`.
 */
function linkNotFollowed(path: string, err: unknown, unreadable: { path: string; error: unknown }[]): undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ENOENT' && code !== 'ELOOP' && code !== 'ENOTDIR') unreadable.push({ path, error: err });
  return undefined;
}
