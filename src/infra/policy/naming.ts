import { setFlagsFromString } from 'node:v8';
import { assertNever, didYouMean, errorMessage } from '../../runtime/index.ts';

/**
 * Naming patterns: regular expressions with `{env}` (the goal environment)
 * and `{label.<key>}` (a merged node/goal label) placeholders. Substituted
 * values are regex-escaped, so a label `a.b` matches only "a.b". Regex
 * quantifiers such as `{4}` or `{1,3}` are left alone.
 */

type Part = { readonly kind: 'text'; readonly text: string } | { readonly kind: 'env' } | { readonly kind: 'label'; readonly key: string };

/** The regex for one node, or the label the pattern needs and the node lacks. */
export type PatternMatcher = { readonly status: 'ok'; readonly regex: RegExp } | { readonly status: 'missing-label'; readonly key: string };

/** A compiled naming pattern; regexes are cached per distinct substitution. */
export interface NamePattern {
  readonly source: string;
  /** The regex for this environment and these labels. */
  matcherFor(environment: string, labels: Readonly<Record<string, string>>): PatternMatcher;
}

export type PatternCompileResult = { readonly ok: true; readonly pattern: NamePattern } | { readonly ok: false; readonly message: string };

/** Names longer than this are not matched (a guard against slow patterns); they are findings. */
export const MAX_MATCHED_LENGTH = 1024;

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_.\-/]*)\}/g;
const LABEL_PREFIX = 'label.';
const CACHE_LIMIT = 1024;

/** Escapes every regex metacharacter of `s`. */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** Compiles a pattern once; an unknown placeholder or a bad regex is an error. */
export function compileNamePattern(source: string): PatternCompileResult {
  const parts: Part[] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    const name = m[1]!;
    if (m.index > last) parts.push({ kind: 'text', text: source.slice(last, m.index) });
    last = m.index + m[0].length;
    if (name === 'env') parts.push({ kind: 'env' });
    else if (name.startsWith(LABEL_PREFIX) && name.length > LABEL_PREFIX.length) parts.push({ kind: 'label', key: name.slice(LABEL_PREFIX.length) });
    else {
      // Anything but a near-miss of {env} is most likely a label written without its prefix.
      const near = didYouMean(name, ['env']) ?? (name.includes('.') ? undefined : `label.${name}`);
      return { ok: false, message: `unknown placeholder {${name}}: patterns know {env} and {label.<key>}${near === undefined ? '' : ` (did you mean "{${near}}"?)`}` };
    }
  }
  if (last < source.length) parts.push({ kind: 'text', text: source.slice(last) });
  // Check the regex once with a neutral value in every placeholder.
  const sample = parts.map((p) => (p.kind === 'text' ? p.text : 'x')).join('');
  const checked = compileRegex(sample);
  if (!checked.ok) return checked;
  // Keyed by the raw substituted values, so that a hit costs neither escaping nor building the source.
  const cache = new Map<string, RegExp>();
  const hasPlaceholders = parts.some((p) => p.kind !== 'text');
  const fixed = hasPlaceholders ? undefined : checked.regex;
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
            const v = labels[p.key];
            if (v === undefined) return { status: 'missing-label', key: p.key };
            key += `${v}\u0000`;
            break;
          }
          default:
            return assertNever(p, 'pattern part');
        }
      }
      let regex = cache.get(key);
      if (regex === undefined) {
        let text = '';
        for (const p of parts) text += p.kind === 'text' ? p.text : escapeRegex(p.kind === 'env' ? environment : labels[p.key]!);
        // Escaped values add only literals: a pattern that compiled in linear time still does.
        regex = new RegExp(text, LINEAR);
        if (cache.size >= CACHE_LIMIT) cache.clear();
        cache.set(key, regex);
      }
      return { status: 'ok', regex };
    },
  };
  return { ok: true, pattern };
}

/**
 * V8's linear-time engine (the `l` flag): a policy's pattern meets names
 * that other people write, and `^(a+)+$` on forty characters would
 * otherwise run for hours. It is behind a V8 flag, which only makes the
 * flag available; regexes without it are unaffected. It refuses what
 * cannot run in linear time (backreferences, lookarounds), as RE2 (and
 * CEL's `matches`) do.
 */
const LINEAR = 'l';
let linearEnabled = false;
function enableLinear(): void {
  if (linearEnabled) return;
  setFlagsFromString('--enable-experimental-regexp-engine');
  linearEnabled = true;
}

/** Compiles a plain regular expression (requiredLabels' `pattern`), for linear-time matching. */
export function compileRegex(source: string): { readonly ok: true; readonly regex: RegExp } | { readonly ok: false; readonly message: string } {
  enableLinear();
  try {
    new RegExp(source);
  } catch (err) {
    return { ok: false, message: `not a valid regular expression: ${errorMessage(err)}` };
  }
  // V8's engine runs a lookbehind in linear time, RE2 (and CEL's matches) refuse it: refused here too, so that a pattern means the same there.
  if (hasLookbehind(source)) return { ok: false, message: 'lookbehinds ((?<=…), (?<!…)) are not available, as in RE2 and CEL\'s matches(): match the part before with the pattern itself' };
  try {
    return { ok: true, regex: new RegExp(source, LINEAR) };
  } catch {
    return { ok: false, message: 'the pattern cannot be matched in linear time: backreferences (\\1) and lookarounds ((?=…), (?!…), (?<=…), (?<!…)) are not available' };
  }
}

/** Whether a valid regex source holds a lookbehind, `(?<=` or `(?<!`, outside escapes and character classes. */
function hasLookbehind(source: string): boolean {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(' && source.startsWith('?<', i + 1) && (source[i + 3] === '=' || source[i + 3] === '!')) return true;
  }
  return false;
}
