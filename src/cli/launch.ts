import { commandFirst } from './command-line.ts';
import { stopOnSignals } from './signals.ts';
import type { SignalStop } from './signals.ts';

/** sysexits.h's EX_IOERR, beside the 64 (EX_USAGE) and 70 (EX_SOFTWARE) the CLI exits with: its output could not be written. */
const EX_IOERR = 74;

/** `main` of src/cli/main.ts, as the launchers call it. */
export type Main = (argv: readonly string[], io: { out: (text: string) => void; env: NodeJS.ProcessEnv; cwd: string; program: string | undefined; stop: SignalStop | undefined }) => Promise<number>;

/**
 * `run` exits 0 on SIGTERM/SIGINT (CLI.md), also when one arrives while it is still loading: the
 * signals are taken from the first moment and handed to the daemon, which unwinds its start-up.
 * The listeners stay for the life of the process, so a second signal (timeout, Ctrl-C under npm)
 * cannot kill a daemon that is shutting down. Undefined for every other command.
 */
export function takeSignals(argv: readonly string[]): SignalStop | undefined {
  return commandFirst(argv)[0] === 'run' ? stopOnSignals() : undefined;
}

/**
 * Runs the command line `argv` through `main` as a process does: its exit status, stdout written
 * line by line. Shared by both launchers: bin/desiredstate.js (modules loaded from dist/ or the
 * sources) and the start-up snapshot's (src/cli/snapshot.ts).
 */
export async function launch(main: Main, argv: readonly string[], options: { program: string | undefined; stop: SignalStop | undefined }): Promise<void> {
  // Set by bin/desiredstate for glibc alone (read as the process started): not passed on to what we run.
  if (process.env.DESIREDSTATE_SET_TUNABLES === '1') {
    delete process.env.GLIBC_TUNABLES;
    delete process.env.DESIREDSTATE_SET_TUNABLES;
  }
  // A stdout the caller closed (`desiredstate schema >&-`): Node puts /dev/null in its place before
  // any of our code runs, so bin/desiredstate looks, and says so.
  const closed = process.env.DESIREDSTATE_STDOUT_CLOSED === '1';
  delete process.env.DESIREDSTATE_STDOUT_CLOSED;
  const [name] = commandFirst(argv);
  const who = name === undefined || name.startsWith('-') ? 'desiredstate' : `desiredstate ${name}`;
  // A reader that goes away (`desiredstate history | head -1`) is not an error: the output is
  // dropped and the command finishes as it would have, without a stack trace. Output that cannot
  // be written (`status > /dev/full`, a closed stdout) is: one line, once, and EX_IOERR.
  let stdoutGone = false;
  let writeFailed = false;
  const cannotWrite = (why: string): void => {
    stdoutGone = true;
    if (writeFailed) return;
    writeFailed = true;
    process.stderr.write(`${who}: cannot write to stdout: ${why}\n`);
    process.exitCode = EX_IOERR;
  };
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') stdoutGone = true;
    else cannotWrite(err.message);
  });
  const status = await main(argv, {
    out: (text) => {
      if (closed) cannotWrite('it is closed (EBADF)');
      if (!stdoutGone) process.stdout.write(`${text}\n`);
    },
    env: process.env,
    cwd: process.cwd(),
    program: options.program,
    stop: options.stop,
  });
  process.exitCode = writeFailed ? EX_IOERR : status;
  // The daemon has stopped and put everything away: nothing left may keep the process alive (deaf
  // to the signals it now ignores). Its output is written out first.
  if (options.stop !== undefined) process.stdout.write('', () => process.exit());
}
