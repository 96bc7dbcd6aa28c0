import { createRequire } from 'node:module';
import type * as Re2Module from '@bufbuild/re2';
import { assertNever, didYouMean, errorMessage, escapeRegex, ownValue } from '../../runtime/index.ts';

/**
 * Naming patterns (and the patterns of required labels): RE2 regular expressions with `{env}` (the goal
 * environment) and `{label.<key>}` (a merged node/goal label) placeholders.
 * A substituted value is matched literally, as one piece: its characters are
 * escaped, and it is grouped where the text around it would otherwise make
 * something else of it (`{{label.n}}` with n = "3" is the text "{3}", never
 * the quantifier `{3}`; a quantifier after a placeholder repeats the whole
 * value). Regex quantifiers such as `{4}` or `{1,3}` are left alone; `\{`
 * is a literal brace, so `\{env}` is the text "{env}".
 */

type Part = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'env' } | { readonly kind: 'label'; readonly key: string };

/** A regular expression that matches in time linear in the text's length. */
export interface LinearRegex {
  /** The pattern, with any placeholders' values in it. */
  readonly source: string;
  /** Whether it matches somewhere in `text` (anchor with `^…$` for the whole text). */
  test(text: string): boolean;
}

/**
 * The regex for one node, the label the pattern needs and the node lacks,
 * or why the pattern cannot be built with this node's values (too large an
 * expression once they are in: a long label under a counted repeat).
 */
export type PatternMatcher =
  | { readonly status: 'ok'; readonly regex: LinearRegex }
  | { readonly status: 'missing-label'; readonly key: string }
  /** `message` follows the pattern's name in a sentence: "<the naming pattern> ^{label.a}{300}$ cannot be matched …". */
  | { readonly status: 'unusable'; readonly message: string };

/** A compiled naming pattern; regexes are cached per distinct substitution. */
export interface NamePattern {
  readonly source: string;
  /** The regex for this environment and these labels. */
  matcherFor(environment: string, labels: Readonly<Record<string, string>>): PatternMatcher;
}

export type PatternCompileResult = { readonly ok: true; readonly pattern: NamePattern } | { readonly ok: false; readonly errors: readonly PatternError[] };

/** What is wrong with a pattern; `index`: where in it (a placeholder's `{`), when one place is. */
export interface PatternError {
  readonly message: string;
  readonly index?: number | undefined;
}

/** Names longer than this are not matched (a guard against slow patterns); they are findings. */
export const MAX_MATCHED_LENGTH = 1024;

/** `{name}` at a position (sticky). */
const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_.\-/]*)\}/y;
/** `{name` with no `}` after it (sticky): a placeholder left open, never a regex's `{` (a count starts with a digit). */
const OPEN_PLACEHOLDER = /\{[A-Za-z_][A-Za-z0-9_.\-/]*(?![A-Za-z0-9_.\-/}])/y;
const LABEL_PREFIX = 'label.';
const CACHE_LIMIT = 1024;


/** Splits a pattern into text and placeholders; a placeholder that is unknown, left open or inside a character class is an error, each one at its `{`. */
function parsePattern(source: string): { readonly ok: true; readonly parts: Part[] } | { readonly ok: false; readonly errors: PatternError[] } {
  const parts: Part[] = [];
  const errors: PatternError[] = [];
  let text = '';
  let inClass = false;
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    let end = i + 1;
    if (c === '\\') {
      const n = source[i + 1];
      if (n === 'Q' && !inClass) {
        // \Q…\E: literal text, up to \E or the end.
        const close = source.indexOf('\\E', i + 2);
        end = close === -1 ? source.length : close + 2;
      } else if ((n === 'p' || n === 'P' || n === 'x') && source[i + 2] === '{') {
        // \p{Greek}, \x{41}: their braces are no placeholder.
        const close = source.indexOf('}', i + 3);
        end = close === -1 ? source.length : close + 1;
      } else {
        end = Math.min(i + 2, source.length);
      }
    } else if (inClass) {
      if (c === '[' && source[i + 1] === ':') {
        const close = source.indexOf(':]', i + 2);
        if (close !== -1) end = close + 2;
      } else if (c === ']') {
        inClass = false;
      } else if (c === '{' && placeholderAt(source, i) !== undefined) {
        const message = `placeholder ${placeholderAt(source, i)!.text} inside a character class [...]: a placeholder stands for a whole value, matched literally; write it outside the brackets`;
        errors.push({ message, index: i });
      }
    } else if (c === '[') {
      inClass = true;
      // `[]a]` and `[^]a]`: a first `]` is a character of the class.
      if (source[end] === '^') end++;
      if (source[end] === ']') end++;
    } else if (c === '{') {
      const p = placeholderAt(source, i);
      if (p !== undefined) {
        if (text !== '') parts.push({ kind: 'text', text });
        text = '';
        if (p.name === 'env') parts.push({ kind: 'env' });
        else if (p.name.startsWith(LABEL_PREFIX) && p.name.length > LABEL_PREFIX.length) parts.push({ kind: 'label', key: p.name.slice(LABEL_PREFIX.length) });
        else errors.push({ message: `unknown placeholder ${p.text}: patterns know {env} and {label.<key>}${meant(p.name)}`, index: i });
        i += p.text.length;
        continue;
      }
      OPEN_PLACEHOLDER.lastIndex = i;
      const open = OPEN_PLACEHOLDER.exec(source)?.[0];
      if (open !== undefined) {
        // RE2 would take it as literal text: a `}` left out would silently ask for the characters "{label.team".
        errors.push({ message: `placeholder ${open} is not closed: write ${open}} (or \\{ for a literal brace)`, index: i });
      }
    }
    text += source.slice(i, end);
    i = end;
  }
  if (text !== '') parts.push({ kind: 'text', text });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, parts };
}

/** ` (did you mean "{label.team}"?)` for an unknown placeholder's name, when one is likely. */
function meant(name: string): string {
  // Anything but a near-miss of {env} is most likely a label written without its prefix, or with `labels.`, as CEL says it.
  const near = didYouMean(name, ['env']) ?? (name.startsWith('labels.') ? `label.${name.slice('labels.'.length)}` : name.includes('.') ? undefined : `label.${name}`);
  return near === undefined ? '' : ` (did you mean "{${near}}"?)`;
}

function placeholderAt(source: string, i: number): { readonly name: string; readonly text: string } | undefined {
  PLACEHOLDER.lastIndex = i;
  const m = PLACEHOLDER.exec(source);
  return m === null ? undefined : { name: m[1]!, text: m[0] };
}

/**
 * `value` as literal regex text between `before` and `after`: escaped, and
 * grouped where the text around it would take part of it (a quantifier
 * after it, a `{` or `(?` before it left open), so that it is always one
 * literal piece. Grouped only there, so that a message shows the pattern
 * as it reads.
 */
function literal(value: string, before: string, after: string): string {
  const escaped = escapeRegex(value);
  return /^[*+?{]/.test(after) || /\{[0-9,]*$/.test(before) || /\(\?[^)]*$/.test(before) ? `(?:${escaped})` : escaped;
}

/** The pattern's text with `value` in each placeholder (the environment for {env}, the label for {label.k}). */
function substitute(parts: readonly Part[], value: (p: Exclude<Part, { kind: 'text' }>) => string): string {
  let out = '';
  parts.forEach((p, i) => {
    if (p.kind === 'text') {
      out += p.text;
      return;
    }
    const next = parts[i + 1];
    out += literal(value(p), out, next?.kind === 'text' ? next.text : '');
  });
  return out;
}

/** Compiles a pattern once; an unknown placeholder or a bad regex is an error. */
export function compileNamePattern(source: string): PatternCompileResult {
  const parsed = parsePattern(source);
  if (!parsed.ok) return parsed;
  const parts = parsed.parts;
  const hasPlaceholders = parts.some((p) => p.kind !== 'text');
  // Checked once with sample values in every placeholder: a value is one literal piece, so any other compiles alike.
  let fixed: LinearRegex | undefined;
  for (const sample of hasPlaceholders ? ['x', ''] : ['']) {
    const checked = compileRegex(substitute(parts, () => sample));
    if (!checked.ok) return { ok: false, errors: [{ message: checked.message }] };
    fixed = checked.regex;
  }
  if (hasPlaceholders) fixed = undefined;
  // Keyed by the raw substituted values, so that a hit costs neither escaping nor building the source.
  const cache = new Map<string, PatternMatcher>();
  const pattern: NamePattern = {
    source,
    matcherFor(environment, labels) {
      if (fixed !== undefined) return { status: 'ok', regex: fixed };
      let key = '';
      for (const p of parts) {
        switch (p.kind) {
          case 'text':
            break;
          case 'env':
            key += `${environment}\u0000`;
            break;
          case 'label': {
            const v = ownValue(labels, p.key);
            if (v === undefined) return { status: 'missing-label', key: p.key };
            key += `${v}\u0000`;
            break;
          }
          default:
            return assertNever(p, 'pattern part');
        }
      }
      let matcher = cache.get(key);
      if (matcher === undefined) {
        const text = substitute(parts, (p) => (p.kind === 'env' ? environment : labels[p.key]!));
        const compiled = compileRegex(text);
        // Literal values cannot break a pattern that compiled; only make it too large (a long label under a counted repeat).
        matcher = compiled.ok ? { status: 'ok', regex: compiled.regex } : { status: 'unusable', message: `${source} cannot be matched with this node's values: ${compiled.message}` };
        if (cache.size >= CACHE_LIMIT) cache.clear();
        cache.set(key, matcher);
      }
      return matcher;
    },
  };
  return { ok: true, pattern };
}

type Re2 = typeof Re2Module;
let re2: Re2 | undefined;
/**
 * The RE2 engine CEL's `matches()` runs on (@bufbuild/re2, pure JavaScript):
 * a policy's pattern meets names that other people write, and `^(a+)+$` on
 * forty characters would otherwise run for hours. RE2 matches in linear
 * time and refuses what cannot (backreferences, lookarounds), so a pattern
 * means the same in a naming rule, a required label and a CEL rule. Loaded
 * on first use, as CEL is: most goal sets have no pattern.
 */
function engine(): Re2 {
  return (re2 ??= createRequire(import.meta.url)('@bufbuild/re2') as Re2);
}

/** Compiles an RE2 regular expression (a naming pattern, requiredLabels' `pattern`), for linear-time matching. */
export function compileRegex(source: string): { readonly ok: true; readonly regex: LinearRegex } | { readonly ok: false; readonly message: string } {
  const { RE2JS, RE2JSSyntaxException } = engine();
  let compiled: InstanceType<typeof RE2JS>;
  try {
    compiled = RE2JS.compile(source);
  } catch (err) {
    if (!(err instanceof RE2JSSyntaxException)) return { ok: false, message: `not a valid regular expression: ${errorMessage(err)}` };
    return { ok: false, message: refusal(err.error, err.input ?? '') };
  }
  return { ok: true, regex: { source, test: (text) => compiled.test(text) } };
}

/** Why RE2 refused a pattern, in our words where RE2's would mislead (it calls a lookbehind a bad named group). */
function refusal(error: string, input: string): string {
  const where = input === '' ? '' : `: \`${input}\``;
  if (/^\\[1-9]/.test(input)) {
    return `backreferences (${input.slice(0, 2)}) cannot be matched in linear time and are not available, as in RE2 and CEL's matches(): repeat the group's pattern instead`;
  }
  if (input.startsWith('(?=') || input.startsWith('(?!')) {
    return 'lookaheads ((?=…), (?!…)) cannot be matched in linear time and are not available, as in RE2 and CEL\'s matches(): match the part after with the pattern itself';
  }
  if (input.startsWith('(?<=') || input.startsWith('(?<!')) {
    return 'lookbehinds ((?<=…), (?<!…)) are not available, as in RE2 and CEL\'s matches(): match the part before with the pattern itself';
  }
  if (error === 'invalid repeat count') {
    return `invalid repeat count${where}: RE2 allows counts up to 1000, and up to 1000 repeats in all where counted repeats are nested`;
  }
  return `not a valid regular expression (RE2 syntax, as in CEL's matches()): ${error}${where}`;
}
