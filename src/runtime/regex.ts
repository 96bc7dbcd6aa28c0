/** Escapes every regular-expression metacharacter of `s`, for JavaScript's RegExp and RE2 alike (as RE2's QuoteMeta). */
export function escapeRegex(s: string): string {
  return s.replace(/[\\.+*?()|[\]{}^$]/g, '\\$&');
}
