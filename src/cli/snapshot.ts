/**
 * The entry of the CLI's start-up snapshot (dist/desiredstate.blob, built by
 * scripts/build.ts with the pinned Node). Building it loads the whole program
 * (every command and backend module, their schemas and machines) once, and V8
 * keeps the loaded heap; bin/desiredstate starts Node from it, so a command
 * begins with everything loaded instead of reading, compiling and running
 * ~1.5 MB of modules (about a third of a one-shot `apply` against PostgreSQL).
 *
 * What runs at build time is only the modules' own loading: nothing that reads
 * the process, the machine or the clock may be kept from it (the boot id, a
 * random prefix: read on first use), and the build checks that two processes
 * started from the snapshot draw different random ids (`--snapshot-self-test`).
 *
 * The start checks that the snapshot is the program the launcher stands
 * beside: the same install (the root the launcher passes first) and the same
 * sources (the fingerprint bin/desiredstate.js checks dist/ by). Anything else,
 * and DESIREDSTATE_FROM_SOURCE=1, hands the process over to bin/desiredstate.js
 * with the same arguments: never different code, only a faster start.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { startupSnapshot } from 'node:v8';
// Plain JavaScript, bundled in: the same fingerprint the JavaScript launcher checks dist/ by.
import { sourceFingerprint } from '../../scripts/source-digest.js';
import { bootId } from '../runtime/index.ts';
import { launch, takeSignals } from './launch.ts';
import { main } from './main.ts';
import { warmUp } from './warm-up.ts';
// The modules `main` imports when a command runs, loaded now so the snapshot holds them too.
import './commands/check.ts';
import './commands/goals.ts';
import './commands/meta.ts';
import './commands/run.ts';
import './commands/scripts.ts';
import './commands/state.ts';

// The hot path of a one-shot command, run once now so that the snapshot holds it compiled. A failure
// fails the build's snapshot step, which then makes none and says why.
warmUp().catch((err: unknown) => {
  process.stderr.write(`desiredstate: the start-up snapshot's warm-up failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});

/** What the build put in (its `intro`): where it was built, from which sources. */
declare const DESIREDSTATE_BUILD: { readonly root: string; readonly digest: string; readonly fingerprint: string };

startupSnapshot.setDeserializeMainFunction(() => {
  // Node's timer lists are kept in the heap: the warm-up's (the pg pool's 5 s connect and 30 s idle
  // timers, cleared but their lists not yet dropped) come back with the expiry of the build's clock,
  // and no platform timer armed for them. A timer of such a duration, or one due after the earliest
  // of them, then never fired: a command's 5 s or 60 s timeout waited for ever. One timer due at
  // once makes Node walk its lists, drop or re-time the stale ones and arm the platform timer anew.
  setTimeout(() => undefined, 1).unref();
  // bin/desiredstate passes its install's root, then the command line.
  const [root = '', ...argv] = process.argv.slice(1);
  if (argv[0] === '--snapshot-self-test') {
    // What must differ from one process to the next, for the build's check; and the flags the launcher started Node with.
    process.stdout.write(`${JSON.stringify({ uuid: randomUUID(), boot: bootId() ?? null, pid: process.pid, execArgv: process.execArgv })}\n`);
    return;
  }
  const build = DESIREDSTATE_BUILD;
  if (root !== build.root || process.env.DESIREDSTATE_FROM_SOURCE === '1' || fingerprint(root) !== build.fingerprint) {
    handOver(join(root, 'bin/desiredstate.js'), argv);
  }
  const stop = takeSignals(argv);
  void launch(main, argv, { program: build.digest, stop });
});

/** Replaces this process with the JavaScript launcher's, on the same arguments (same pid, same signals). */
function handOver(launcher: string, argv: readonly string[]): never {
  if (process.execve === undefined) {
    // Not on this platform: bin/desiredstate uses the snapshot only where it is.
    process.stderr.write(`desiredstate: the start-up snapshot does not match; run ${launcher}\n`);
    process.exit(70);
  }
  return process.execve(process.execPath, [process.execPath, launcher, ...argv]);
}

function fingerprint(root: string): string | undefined {
  try {
    return sourceFingerprint(root);
  } catch {
    return undefined;
  }
}
