import { isJsonObject, ownValue } from '../../runtime/index.ts';
import type { FieldDiff } from '../../runtime/index.ts';

function childPath(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/**
 * Field-by-field differences between a desired and an actual value, with
 * paths such as `content`, `tags.owner` or `memberOf[1]`. A field missing on
 * one side is compared as `undefined`. Keys are visited in sorted order so
 * the result is stable.
 */
export function diffFields(desired: unknown, actual: unknown, path = ''): FieldDiff[] {
  const out: FieldDiff[] = [];
  collect(desired, actual, path, out);
  return out;
}

function collect(desired: unknown, actual: unknown, path: string, out: FieldDiff[]): void {
  if (Object.is(desired, actual)) return;
  if (Array.isArray(desired) && Array.isArray(actual)) {
    const n = Math.max(desired.length, actual.length);
    for (let i = 0; i < n; i++) collect(desired[i], actual[i], `${path}[${i}]`, out);
    return;
  }
  if (isJsonObject(desired) && isJsonObject(actual)) {
    const keys = new Set([...Object.keys(desired), ...Object.keys(actual)]);
    for (const key of [...keys].sort()) {
      collect(ownValue(desired, key), ownValue(actual, key), childPath(path, key), out);
    }
    return;
  }
  out.push({ path: path === '' ? '.' : path, desired, actual });
}
