import { assertNever } from './errors.ts';

/** Deep equality of JSON values: key order does not matter, array order does; a key whose value is undefined is no key. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isJsonObject(a)) {
    if (!isJsonObject(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * `record[key]` when `record` holds `key` itself, else undefined: a key a user wrote (a label, an
 * input key, an output) may be `constructor` or `toString`, which a plain object inherits.
 */
export function ownValue<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** What a JSON value is, as a message names it: `a list (a JSON array)`, `a map (a JSON object)`, `a string` … */
export function jsonTypeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list (a JSON array)';
  if (typeof v === 'object') return 'a map (a JSON object)';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return 'a number';
  if (typeof v === 'boolean') return 'a boolean';
  return typeof v;
}

/**
 * Whether `v` is a map (a JSON object): any non-null object but an array. The one check of it for
 * parsed goals, JSON a command printed and values built from them, none of which holds a class
 * instance; it does not look at the prototype, so a Date or a Map would pass too.
 */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Where a free-form value (an exec `input`, ansible `extraVars`) holds a number that JSON cannot
 * carry as written (`inexactNumber`), each with the path to it and why, in the words of a goal: it
 * would be changed in silence on its way to the command; quoted, it goes as the string written.
 * Recursive: a goal file's values are at most 64 levels deep, an output put in by a reference as deep
 * again. The path is one stack, copied only for what is found (this runs on every node's free-form
 * maps at each compile).
 */
export function inexactNumbers(value: unknown): { path: (string | number)[]; message: string }[] {
  const found: { path: (string | number)[]; message: string }[] = [];
  const path: (string | number)[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'number') {
      const problem = inexactNumber(v);
      if (problem !== undefined) found.push({ path: [...path], message: goalMessage(v, problem) });
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        path.push(i);
        visit(v[i]);
        path.pop();
      }
    } else if (typeof v === 'object' && v !== null) {
      for (const k in v) {
        path.push(k);
        visit((v as Record<string, unknown>)[k]);
        path.pop();
      }
    }
  };
  visit(value);
  return found;
}

/** Why JSON cannot carry a number as written (see `inexactNumber`). */
export type InexactNumber = 'nan' | 'infinite' | 'beyond-2^53';

/** A whole number written in digits: a JSON integer, or a YAML 1.2 core `int` (decimal, `0o…`, `0x…`). */
const WHOLE_LITERAL = /^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$/;

/**
 * Why JSON cannot carry the number `v` as written, if it cannot: `nan` and `infinite` (`.inf`, or a
 * literal too large for a double, `1e400`), which JSON has no form for (written as JSON, `null`); and
 * `beyond-2^53`, a whole number past ±(2^53−1), read as the nearest double, which may not be the number
 * written (a 19-digit id, 12345678901234567890, is read as 12345678901234567000) and cannot tell
 * whether it is: each is refused, one that happens to be exact (2^53, 1e20) too. From 1e21 on, JSON
 * writes a number with an exponent (1e+21), a float to whoever reads it, as the same double: a float
 * written so (1e21, 1.5e300) passes, and so does any number there, unless `literal`, the text it was
 * read from (a goal's scalar, a command's JSON), says it was written as a whole number in digits (a
 * 22-digit id), which the double alone cannot tell from such a float.
 */
export function inexactNumber(v: number, literal?: string): InexactNumber | undefined {
  if (Number.isNaN(v)) return 'nan';
  if (!Number.isFinite(v)) return 'infinite';
  if (Number.isInteger(v) && !Number.isSafeInteger(v) && (Math.abs(v) < 1e21 || (literal !== undefined && WHOLE_LITERAL.test(literal)))) return 'beyond-2^53';
  return undefined;
}

/** `inexactNumber`'s answer for a number written in a goal, with what to do about it. */
function goalMessage(v: number, problem: InexactNumber): string {
  switch (problem) {
    case 'nan':
      return '.nan is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string';
    case 'infinite': {
      const sign = v > 0 ? '' : '-';
      return `${sign}.inf (or a number too large for a double, such as ${sign}1e400) is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string`;
    }
    case 'beyond-2^53':
      // The message says only what is true of all of them: an exact one (2^53, 1e20) is refused too.
      return `a whole number beyond ±9007199254740991 (2^53−1) may not be the one written: past there a number is read as the nearest double (9007199254740993 as 9007199254740992), so its digits are not sure to reach the command; this one is read as ${JSON.stringify(v)}; quote it ("…") to send it as a string, as written`;
    default:
      return assertNever(problem, 'inexact number');
  }
}
