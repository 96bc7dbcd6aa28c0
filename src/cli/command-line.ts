import type { ParseArgsConfig } from 'node:util';

/** Flags every command takes (parseArgs options). This module imports nothing: the launcher reads it before anything loads. */
export const commonOptions = {
  goals: { type: 'string' },
  state: { type: 'string' },
  format: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const TAKES_VALUE = new Set(Object.entries(commonOptions).flatMap(([name, o]) => (o.type === 'string' ? [`--${name}`] : [])));
const SWITCHES = new Set(['--help', '-h']);

/**
 * What comes before the command: the index of the command, the first argument that may not come
 * before one (`stop`), or the end of the line with no command (`help`: `--help` was among them).
 * A value-taking option given without `=` takes the next argument as its value.
 */
function leading(argv: readonly string[]): { readonly command: number } | { readonly stop: string } | { readonly help: boolean } {
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) return { command: i };
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (SWITCHES.has(a)) help = true;
    else if (!TAKES_VALUE.has(name)) return { stop: a };
    else if (name === a) i++; // its value is the next argument
  }
  return { help };
}

/**
 * The command line with its command first: `desiredstate --goals g plan` is
 * `desiredstate plan --goals g`, as git and kubectl take options given
 * before the command. Only the options every command takes may come
 * before it (`--goals DIR`, `--state=DIR`, `--format`, `--log-level`,
 * `--help`); anything else there (`--` too), or no command at all, leaves
 * `argv` as it is, for `main` to refuse with `leadingProblem`'s reason.
 * `--help`, `-h` and `--version` first keep their own meaning.
 */
export function commandFirst(argv: readonly string[]): readonly string[] {
  const first = argv[0];
  if (first === undefined || !first.startsWith('-') || first === '--help' || first === '-h' || first === '--version') return argv;
  const found = leading(argv);
  if (!('command' in found)) return argv;
  const i = found.command;
  return [argv[i]!, ...argv.slice(0, i), ...argv.slice(i + 1)];
}

/**
 * Why `commandFirst` found no command in `argv` (which starts with an
 * option): the first option that cannot come before a command, `help` when
 * only options every command takes are there and `--help` among them, or
 * `none` when there is no command at all.
 */
export function leadingProblem(argv: readonly string[]): { option: string } | 'help' | 'none' {
  const found = leading(argv);
  if ('stop' in found) return { option: found.stop };
  return 'help' in found && found.help ? 'help' : 'none';
}
