import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { Document, Node as YamlNode, Pair } from 'yaml';
import type { Diagnostic } from './diagnostics.ts';
import type { SourceLocation } from './node-spec.ts';

export type PathKey = string | number;

/** Limits that keep hostile input cheap to refuse. */
export interface LoadLimits {
  /** Largest goal file, in bytes. */
  readonly maxFileBytes: number;
  /** Deepest nesting of maps and sequences. */
  readonly maxDepth: number;
  /** Most alias dereferences per document (alias bombs). */
  readonly maxAliasCount: number;
  /** Most goal files in a goal set. */
  readonly maxFiles: number;
}

export const defaultLoadLimits: LoadLimits = {
  maxFileBytes: 8 * 1024 * 1024,
  maxDepth: 64,
  maxAliasCount: 100,
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

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Parses one goal file's text. YAML 1.2 core schema only (so `NO` is a
 * string and `0644` is a decimal number), no merge keys, no custom tags, no
 * duplicate keys, no `__proto__` keys, bounded aliases and depth. Problems
 * are returned as diagnostics; nothing throws.
 */
export function parseGoalText(
  file: string,
  text: string,
  limits: LoadLimits = defaultLoadLimits,
): { documents: SourceDocument[]; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const lineCounter = new LineCounter();
  const at = (offset: number): SourceLocation => {
    const p = lineCounter.linePos(offset);
    return { file, line: p.line, col: p.col };
  };
  const problem = (loc: SourceLocation, code: string, message: string): void => {
    diagnostics.push({ ...loc, severity: 'error', code, message });
  };

  if (text.trim() === '') {
    problem({ file, line: 1, col: 1 }, 'empty-file', 'goal file is empty');
    return { documents: [], diagnostics };
  }
  const flowDepth = maxFlowDepth(text);
  if (flowDepth > limits.maxDepth) {
    problem({ file, line: 1, col: 1 }, 'too-deep', `nesting deeper than ${limits.maxDepth} levels`);
    return { documents: [], diagnostics };
  }

  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, {
      lineCounter,
      version: '1.2',
      schema: 'core',
      merge: false,
      uniqueKeys: true,
      strict: true,
      prettyErrors: false,
      keepSourceTokens: false,
    }) as Document.Parsed[];
  } catch (err) {
    // The parser recurses on nesting; a stack overflow is hostile input, not a crash.
    problem({ file, line: 1, col: 1 }, err instanceof RangeError ? 'too-deep' : 'yaml-syntax', err instanceof RangeError ? `nesting deeper than ${limits.maxDepth} levels` : String(err));
    return { documents: [], diagnostics };
  }
  if (!Array.isArray(docs)) docs = [docs];

  const documents: SourceDocument[] = [];
  docs.forEach((doc, index) => {
    let bad = false;
    for (const e of doc.errors) {
      bad = true;
      problem(at(e.pos[0]), e.code === 'DUPLICATE_KEY' ? 'duplicate-key' : 'yaml-syntax', firstLine(e.message));
    }
    for (const w of doc.warnings) {
      bad = true;
      const code = w.code === 'TAG_RESOLVE_FAILED' ? 'custom-tag' : 'yaml-warning';
      problem(at(w.pos[0]), code, firstLine(w.message));
    }
    if (bad) return;
    if (doc.contents === null) {
      // `---` followed by nothing: an empty document between separators.
      problem(at(doc.range[0]), 'empty-document', 'YAML document is empty');
      return;
    }
    if (!checkTree(doc.contents, 1, limits, at, problem)) return;
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: limits.maxAliasCount });
    } catch (err) {
      problem(at(doc.contents.range?.[0] ?? 0), 'alias-bomb', `too many alias expansions (${firstLine(String(err))})`);
      return;
    }
    const contents = doc.contents;
    documents.push({
      file,
      index,
      value,
      locate(path, part = 'value') {
        const hit = nodeAt(contents, path);
        const node = part === 'key' && hit.key !== undefined ? hit.key : hit.value;
        return at(node?.range?.[0] ?? contents.range?.[0] ?? 0);
      },
    });
  });
  return { documents, diagnostics };
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

/** The deepest `[`/`{` nesting outside quotes: a cheap guard before the recursive parser runs. */
function maxFlowDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let quote: string | undefined;
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (comment) {
      if (c === '\n') comment = false;
      continue;
    }
    if (quote !== undefined) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === '#') comment = true;
    else if ((c === '"' || c === "'") && depth > 0) quote = c;
    else if (c === '[' || c === '{') max = Math.max(max, ++depth);
    else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return max;
}

/** Structural checks the parser does not make; false if the document must be refused. */
function checkTree(
  root: YamlNode,
  startDepth: number,
  limits: LoadLimits,
  at: (offset: number) => SourceLocation,
  problem: (loc: SourceLocation, code: string, message: string) => void,
): boolean {
  let ok = true;
  const stack: { node: YamlNode; depth: number }[] = [{ node: root, depth: startDepth }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    const offset = node.range?.[0] ?? 0;
    if (depth > limits.maxDepth) {
      problem(at(offset), 'too-deep', `nesting deeper than ${limits.maxDepth} levels`);
      return false;
    }
    if (isAlias(node)) continue;
    if (node.tag !== undefined && !CORE_TAGS.has(node.tag)) {
      problem(at(offset), 'custom-tag', `custom tag ${node.tag} is not allowed in goal files`);
      ok = false;
    }
    if (isMap(node)) {
      for (const item of node.items as Pair<YamlNode, YamlNode>[]) {
        const key = item.key;
        if (isScalar(key)) {
          const k = String(key.value);
          if (k === '<<') {
            problem(at(key.range?.[0] ?? offset), 'merge-key', 'merge keys (<<) are not allowed in goal files; write the fields out');
            ok = false;
          } else if (FORBIDDEN_KEYS.has(k)) {
            problem(at(key.range?.[0] ?? offset), 'forbidden-key', `key "${k}" is not allowed`);
            ok = false;
          }
          if (key.tag !== undefined && !CORE_TAGS.has(key.tag)) {
            problem(at(key.range?.[0] ?? offset), 'custom-tag', `custom tag ${key.tag} is not allowed in goal files`);
            ok = false;
          }
        } else if (key !== null && key !== undefined) {
          problem(at(key.range?.[0] ?? offset), 'complex-key', 'map keys must be plain strings');
          ok = false;
        }
        if (item.value !== null && item.value !== undefined) stack.push({ node: item.value, depth: depth + 1 });
      }
    } else if (isSeq(node)) {
      for (const item of node.items as YamlNode[]) if (item !== null) stack.push({ node: item, depth: depth + 1 });
    }
  }
  return ok;
}

function nodeAt(root: YamlNode, path: readonly PathKey[]): { key?: YamlNode; value: YamlNode } {
  let current: YamlNode = root;
  let key: YamlNode | undefined;
  for (const step of path) {
    if (isMap(current)) {
      const pair = (current.items as Pair<YamlNode, YamlNode>[]).find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(step),
      );
      if (pair === undefined) return key === undefined ? { value: current } : { key, value: current };
      key = pair.key ?? undefined;
      if (pair.value === null || pair.value === undefined) return key === undefined ? { value: current } : { key, value: key };
      current = pair.value;
    } else if (isSeq(current) && typeof step === 'number') {
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
  const limits = options.limits ?? defaultLoadLimits;
  const displayRoot = options.displayRoot ?? process.cwd();
  const files = (await listYamlFiles(dir)).sort();
  const documents: SourceDocument[] = [];
  const diagnostics: Diagnostic[] = [];
  if (files.length > limits.maxFiles) {
    diagnostics.push({ file: dir, line: 1, col: 1, severity: 'error', code: 'too-many-files', message: `more than ${limits.maxFiles} goal files` });
    return { documents, diagnostics, files };
  }
  for (const abs of files) {
    const shown = displayPath(abs, displayRoot);
    const loaded = await readGoalFile(abs, shown, limits);
    documents.push(...loaded.documents);
    diagnostics.push(...loaded.diagnostics);
  }
  return { documents, diagnostics, files };
}

export async function readGoalFile(
  abs: string,
  shown: string,
  limits: LoadLimits = defaultLoadLimits,
): Promise<{ documents: SourceDocument[]; diagnostics: Diagnostic[] }> {
  const info = await stat(abs);
  if (info.size > limits.maxFileBytes) {
    return {
      documents: [],
      diagnostics: [{ file: shown, line: 1, col: 1, severity: 'error', code: 'file-too-large', message: `goal file is ${info.size} bytes; the limit is ${limits.maxFileBytes}` }],
    };
  }
  const bytes = await readFile(abs);
  const text = decodeUtf8(bytes);
  if (typeof text !== 'string') {
    return { documents: [], diagnostics: [{ file: shown, ...text, severity: 'error', code: 'not-utf8', message: 'goal file is not valid UTF-8' }] };
  }
  return parseGoalText(shown, text, limits);
}

/** The text, or the line and column of the first byte that is not UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | { line: number; col: number } {
  try {
    let text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return text;
  } catch {
    const loose = new TextDecoder('utf-8').decode(bytes);
    const bad = loose.indexOf('\uFFFD');
    const before = loose.slice(0, Math.max(0, bad));
    const line = before.split('\n').length;
    const col = bad - before.lastIndexOf('\n');
    return { line, col };
  }
}

export function displayPath(abs: string, root: string): string {
  const rel = relative(root, abs);
  return rel.startsWith('..') ? abs : rel.split(sep).join('/');
}

async function listYamlFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listYamlFiles(p)));
    else if (e.isFile() && /\.ya?ml$/i.test(e.name)) out.push(p);
  }
  return out;
}
