import { hash } from 'node:crypto';

/** JSON with keys sorted, so equal values always serialise the same. */
export function stableStringify(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** Hex SHA-256 (the one-shot `crypto.hash`: no hasher object per call, which matters once per node per pass). */
export function sha256(text: string | Uint8Array): string {
  return hash('sha256', text, 'hex');
}
