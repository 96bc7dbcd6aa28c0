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
 * carry as written, each with the path to it and why: one that is not finite (`.inf`, `.nan`, or a
 * literal too large for a double, `1e400`), which JSON has no form for (it would be sent, stored and
 * shown as `null`); and a whole number beyond ±(2^53−1), read as the nearest double, which may not be
 * the number written (a 19-digit id, 12345678901234567890, is read as 12345678901234567000 and sent so)
 * and cannot tell whether it is: each is refused, one that happens to be exact (2^53, 1e20) too; any
 * 64-bit integer is below 1e21, where JSON turns to exponents: see `inexactNumber`. Either would be
 * changed in silence on its way to the command; quoted, it goes as the string written. Recursive: a goal file's values
 * are at most 64 levels deep, an output put in by a reference as deep again. The path is one stack,
 * copied only for what is found (this runs on every node's free-form maps at each compile).
 */
export function inexactNumbers(value: unknown): { path: (string | number)[]; message: string }[] {
  const found: { path: (string | number)[]; message: string }[] = [];
  const path: (string | number)[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'number') {
      const message = inexactNumber(v);
      if (message !== undefined) found.push({ path: [...path], message });
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

function inexactNumber(v: number): string | undefined {
  if (Number.isNaN(v)) return '.nan is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string';
  if (!Number.isFinite(v)) {
    const sign = v > 0 ? '' : '-';
    return `${sign}.inf (or a number too large for a double, such as ${sign}1e400) is no number JSON can carry (written as JSON it is null: on stdin, in plan, in the state): quote it to send it as a string`;
  }
  // From 1e21 on, JSON writes a number with an exponent (1e+21), a float to whoever reads it, as the
  // same double: refused there, a float written so (1e21, 1.5e300) could not be passed at all.
  // Past 2^53−1 a number is read as the nearest double, and the double cannot tell which number was
  // written: 9007199254740993 and 9007199254740992 are one. Each is refused, an exact one (2^53, 1e20)
  // too, and the message says only what is true of all of them.
  if (Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < 1e21) {
    return `a whole number beyond ±9007199254740991 (2^53−1) may not be the one written: past there a number is read as the nearest double (9007199254740993 as 9007199254740992), so its digits are not sure to reach the command; this one is read as ${JSON.stringify(v)}; quote it ("…") to send it as a string, as written`;
  }
  return undefined;
}
