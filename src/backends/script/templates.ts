import type { InfraNodeType } from '../../infra/index.ts';
import type { Shape } from './shape.ts';

/**
 * The built-in template generator's table: for each kind, scripts chosen by
 * the shape of the node's input. Each is a POSIX sh script that speaks the
 * exec protocol (verb as $1, request JSON on stdin, JSON on stdout) with jq,
 * keeps every path relative to its working directory (the backend root) and
 * is short enough to review in a minute.
 */

export interface Template {
  /** Names the template in messages and in the script's header. */
  readonly id: string;
  readonly kind: InfraNodeType;
  /** What the input must hold: key → required JSON type, or `any`. No other key is allowed. */
  readonly input: Readonly<Record<string, 'string' | 'any'>>;
  /**
   * The input key naming the file it changes, relative to the root. Its changes read the file and
   * write it back whole, so the backend runs the changes of every node naming one file one at a time.
   */
  readonly target: string;
  readonly description: string;
  readonly script: string;
}

// By its text first, then where it leads: a symbolic link under the root (to a directory
// elsewhere) must not carry a write out of it. realpath -m resolves the links of the part that
// exists and keeps the rest as written.
const PATH_GUARD = (variable: string): string => `case "$${variable}" in
  ''|/*|..|../*|*/..|*/../*) echo "${variable} must be a relative path that stays under the root: $${variable}" >&2; exit 64 ;;
esac
root=$(pwd -P)
case "$(realpath -m -- "$${variable}")" in
  "$root"/*) ;;
  *) echo "${variable} leaves the root through a symbolic link: $${variable}" >&2; exit 64 ;;
esac`;

const FILE_SCRIPT = `#!/bin/sh
# desiredstate template "file" (generic.resource, input {path, content}).
# Keeps one file, relative to the working directory (the backend root),
# holding exactly input.content. Exec protocol: $1 is read, create, update or
# delete; the request {"id", "input", "outputs"} arrives as JSON on stdin.
set -eu
verb="\${1:-}"
req=$(cat)
path=$(printf '%s' "$req" | jq -r '.input.path')
${PATH_GUARD('path')}
# Files are named ./path: a path that starts with - is no option to dirname, mv or rm.
f="./$path"
case "$verb" in
  read)
    if [ -f "$f" ]; then
      jq -Rs --arg path "$path" '{exists: true, state: {path: $path, content: .}, outputs: {path: $path}}' < "$f"
    else
      echo '{"exists": false}'
    fi ;;
  create|update)
    mkdir -p "$(dirname "$f")"
    tmp="$f.tmp.$$"
    printf '%s' "$req" | jq -j '.input.content' > "$tmp"
    mv "$tmp" "$f"
    jq -n --arg path "$path" '{outputs: {path: $path}}' ;;
  delete)
    rm -f "$f" ;;
  *)
    echo "unknown verb: $verb" >&2; exit 64 ;;
esac
`;

const JSON_KEY_SCRIPT = `#!/bin/sh
# desiredstate template "json-key" (generic.resource, input {file, key, value}).
# Keeps one top-level key of a JSON object file, relative to the working
# directory (the backend root), equal to input.value; other keys are left
# alone. Exec protocol: $1 is read, create, update or delete; the request
# {"id", "input", "outputs"} arrives as JSON on stdin.
set -eu
verb="\${1:-}"
req=$(cat)
file=$(printf '%s' "$req" | jq -r '.input.file')
key=$(printf '%s' "$req" | jq -r '.input.key')
${PATH_GUARD('file')}
# Files are named ./file: a file that starts with - is no option to dirname, mv or jq.
f="./$file"
case "$verb" in
  read)
    if [ -f "$f" ] && jq -e --arg k "$key" 'type == "object" and has($k)' "$f" > /dev/null; then
      jq --arg k "$key" --arg file "$file" '{exists: true, state: {file: $file, key: $k, value: .[$k]}, outputs: {file: $file, key: $k}}' "$f"
    else
      echo '{"exists": false}'
    fi ;;
  create|update)
    mkdir -p "$(dirname "$f")"
    [ -f "$f" ] || echo '{}' > "$f"
    tmp="$f.tmp.$$"
    printf '%s' "$req" | jq --arg k "$key" --slurpfile cur "$f" '$cur[0] + {($k): .input.value}' > "$tmp"
    mv "$tmp" "$f"
    jq -n --arg file "$file" --arg k "$key" '{outputs: {file: $file, key: $k}}' ;;
  delete)
    if [ -f "$f" ]; then
      tmp="$f.tmp.$$"
      jq --arg k "$key" 'del(.[$k])' "$f" > "$tmp"
      mv "$tmp" "$f"
    fi ;;
  *)
    echo "unknown verb: $verb" >&2; exit 64 ;;
esac
`;

export const TEMPLATES: readonly Template[] = [
  { id: 'file', kind: 'generic.resource', input: { path: 'string', content: 'string' }, target: 'path', description: 'a file holding input.content', script: FILE_SCRIPT },
  {
    id: 'json-key',
    kind: 'generic.resource',
    input: { file: 'string', key: 'string', value: 'any' },
    target: 'file',
    description: 'one key of a JSON object file equal to input.value',
    script: JSON_KEY_SCRIPT,
  },
];

/** The kinds some template covers. */
export const TEMPLATE_KINDS: readonly InfraNodeType[] = [...new Set(TEMPLATES.map((t) => t.kind))];

/** Whether an input shape fits a template: the same keys, each of the required type. */
export function fits(template: Template, shape: Shape): boolean {
  if (typeof shape === 'string') return false;
  const keys = Object.keys(shape);
  const wanted = Object.keys(template.input);
  if (keys.length !== wanted.length) return false;
  return wanted.every((k) => {
    const want = template.input[k];
    return Object.hasOwn(shape, k) && (want === 'any' || shape[k] === want);
  });
}

/** The template for a kind and input shape, if any (first match in table order). */
export function templateFor(kind: InfraNodeType, shape: Shape): Template | undefined {
  return TEMPLATES.find((t) => t.kind === kind && fits(t, shape));
}

/** "file {path, content}, json-key {file, key, value}" — for messages. */
export function describeTemplates(kind: InfraNodeType): string {
  return TEMPLATES.filter((t) => t.kind === kind)
    .map((t) => `${t.id} {${Object.keys(t.input).join(', ')}}`)
    .join(', ');
}
