import { DesiredStateError, errorMessage, ErrorCodes, ownValue } from '../runtime/index.ts';
import { commandFirst, leadingProblem } from './command-line.ts';
import { createContext, parseHistory } from './context.ts';
import { oneLine, terminalSafe } from './format.ts';
import type { CliContext } from './context.ts';
import { stopOnSignals } from './signals.ts';
import type { SignalStop } from './signals.ts';
import { EXIT, MAX_CONCURRENCY, oneOf, parse, parseCount, UsageError } from './usage.ts';
import { VERSION } from './version.ts';

/** A bad invocation with no command at all: the list is one --help away. */
const NO_COMMAND = 'desiredstate: no command given; run desiredstate --help for the commands\n';

const COMMON_HELP = `Options for every command (before or after it):
  --goals DIR        goal directory (default goals/, or $DESIREDSTATE_GOALS)
  --state DIR        state directory holding state.db (default .desiredstate/, or $DESIREDSTATE_STATE)
  --format FORMAT    text (the default) or json; graph: dot (the default), mermaid or json; check: text, json or sarif;
                     schema: json only
  --log-level LEVEL  fatal, error, warn, info, debug, trace or silent (default warn, info for run; or $DESIREDSTATE_LOG_LEVEL)
                     logs go to stderr: JSON lines, human lines on a terminal ($DESIREDSTATE_LOG_FORMAT=json|pretty)
  -h, --help         show help`;

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly help: string;
  run(argv: readonly string[], io: Io): Promise<number>;
}

interface Io {
  readonly out: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** The launcher's digest of the program (sources and dependency lock): keys the compiled-goal cache; none, no cache. */
  readonly program?: string | undefined;
  /**
   * `run` only: the signal listeners the launcher set up at its first moment (`stopOnSignals`).
   * Without them, `run` sets up its own for as long as it runs.
   */
  readonly stop?: SignalStop | undefined;
}

function context(values: Record<string, unknown>, io: Io, defaultLogLevel = 'warn'): CliContext {
  return createContext(values as Parameters<typeof createContext>[0], { ...io, defaultLogLevel });
}

const formatFlag = (values: { format?: string | undefined }, allowed: readonly string[]): void => {
  if (values.format !== undefined) oneOf('format', values.format, allowed, allowed[0]!);
};

/**
 * The command table: one entry per command, dispatched by name. Each command's module is imported
 * when that command runs: `apply` does not load the daemon's HTTP server, `--help` loads no command.
 */
export const commands: Record<string, Command> = {
  validate: {
    summary: 'compile the goals and check types, references and policies; touches nothing',
    usage: 'desiredstate validate [--goals DIR] [--format text|json]',
    help: 'Exit status: 0 valid, 1 errors. Needs no backend connection and no secret.',
    async run(argv, io) {
      const { values } = parse(argv, {});
      formatFlag(values, ['text', 'json']);
      return (await import('./commands/goals.ts')).validate(context(values, io));
    },
  },
  plan: {
    summary: 'observe every node and print what apply would do',
    usage: 'desiredstate plan [--goals DIR] [--state DIR] [--all] [--format text|json]',
    help: 'plan makes no change itself, but observing runs the reads of each backend: the read command of an exec node, an ansible playbook in check mode (where a task marked check_mode: false runs for real).\nSymbols: + create (a create lists its fields, and a resource the node managed before, left in place), ~ update (also, known after apply, a node in sync or drifted whose spec reads outputs of a node the plan creates, updates or makes again: apply updates it if they change; drift corrected in place gives back the outputs a node had when applied), - delete (one apply refuses before calling the backend, as removed nodes on a dependency cycle that cannot be broken, is x with apply\'s reason, and one that waits on it ⊘), ○ forget (removed from the goals, not deleted: the resource, or what a create cut short may have made, is left as it is, or gone already: a removed node is read before its delete, and one found gone is sent none), ! drift, = unchanged (with --all; without it too where ignoreFields keeps a goal edit from being applied, the fields listed), ⊘ held (by a policy or the fault policy, waiting for a generated script\'s review or a run\'s approval, or a read that cannot tell whether an interrupted create made something) or blocked (behind a dependency not ready: failed, held, or drifted so that it cannot serve its dependents, as a managed directory made a symlink by hand; or removed from the goals, its delete put off while a node still in them names its resource or a dependent of it is not deleted), x error.\nExit status: 0 nothing for apply to do (also when the only drift is report-only, selfHeal: false), 2 changes pending (a node to forget among them), 1 an error, a node blocked or held, drift no update can correct (apply would not converge them), or a mass deletion apply refuses without --allow-mass-deletion.',
    async run(argv, io) {
      const { values } = parse(argv, { all: { type: 'boolean' } });
      formatFlag(values, ['text', 'json']);
      return (await import('./commands/goals.ts')).plan(context(values, io), { showUnchanged: values.all === true });
    },
  },
  apply: {
    summary: 'one reconcile pass in dependency order',
    usage: 'desiredstate apply [--goals DIR] [--state DIR] [--yes] [--allow-mass-deletion] [--concurrency N] [--history 30d] [--format text|json]',
    help: 'Asks before deleting anything unless --yes (without a terminal to ask on, stdin and stderr both, deletes nothing; any answer but "yes", Ctrl-D too, declines). Dependents of a failed node are blocked, never removed.\n--concurrency bounds the operations in flight at once (default 10): the creates and updates of a dependency level,\nthen the deletes of nodes removed from the goals, side by side too, each once every removed node that depends on it is deleted.\n--history keeps finished runs, operations, drift reports and events this long (default 30d; forever keeps all).\nExit status: 0 converged, 1 some node failed, is blocked or is held, has drift no update can correct, or a deletion was declined or refused;\n130 interrupted (Ctrl-C) at the question, with nothing done.\nCtrl-C (SIGINT) or SIGTERM while it applies aborts the commands running and starts nothing more: exit 130 (143 for SIGTERM);\nwhat was cut off spends no retry attempt, is left pending and resolved by observing at the next apply or daemon start\n(as after a crash), and `history` shows the run interrupted. A second Ctrl-C kills it at once, as a crash would.',
    async run(argv, io) {
      const { values } = parse(argv, { yes: { type: 'boolean', short: 'y' }, 'allow-mass-deletion': { type: 'boolean' }, concurrency: { type: 'string' }, history: { type: 'string' } });
      formatFlag(values, ['text', 'json']);
      const concurrency = parseCount('concurrency', values.concurrency, MAX_CONCURRENCY, 10);
      const history = parseHistory(values.history);
      return (await import('./commands/goals.ts')).apply(context(values, io), { yes: values.yes === true, allowMassDeletion: values['allow-mass-deletion'] === true, concurrency, history });
    },
  },
  run: {
    summary: 'the daemon: continuous reconciliation until SIGTERM/SIGINT',
    usage: 'desiredstate run [--goals DIR] [--state DIR] [--interval 60s] [--listen 127.0.0.1:7474] [--concurrency 10] [--fault-policy FILE] [--allow-mass-deletion] [--debounce 300ms] [--history 30d]',
    help: 'Each node is re-observed every --interval (±10 % jitter; per-goal and per-node `interval` override it), at once when\nthe goal files change or its backend reports a change, and when its backoff expires (an ansible playbook is observed in\ncheck mode, so a task of it marked check_mode: false runs for real each time). Drift is logged as a line with\nthe message "drift detected" (JSON off a terminal) and stored (see `desiredstate drift`); a node a policy holds, with\n"node held by policy" (once a hold, again when its reason changes). SIGHUP reloads the goals.\nA revision that does not compile, or that would delete more than max(5, 10 %) of the managed nodes (unless\n--allow-mass-deletion), is refused whole: the last good graph keeps running (at a start, the goals last applied, while stored,\nfrom the same working directory by the same build of desiredstate).\nA command that a daemon or apply killed -9 left running holds back only the node it works on (status blocked, the reason\nnaming it) until it ends or is killed at its timeout; every other node is reconciled at once.\n--listen serves /healthz, /readyz, /status, POST /retry/NODE and POST /retry; port 0 picks a free port (logged).\n--concurrency bounds the operations in flight at once (default 10), the deletes of nodes removed from the goals\nincluded: those run side by side, each once every removed node that depends on it is deleted.\n--debounce waits this long after a goal file changes before reloading (default 300ms), the change found by an event or by\nthe 5-s poll; never while git holds the index.lock of the repository (a checkout writing the work tree): the reload waits\nfor it to go, then for the quiet period again, warning of a lock held 30 s (one a crashed git left: remove it).\nA start and SIGHUP load at once.\n--fault-policy FILE overrides retry settings per fault class and the circuit breaker, e.g.\n  retry: { transient: { baseMs: 500, maxMs: 60000, retryBudget: 20 }, permanent: { retryBudget: 5 } }\n  circuitBreaker: { failureThreshold: 10, coolDownMs: 60000 }\nPer class (transient, throttled, auth, permanent, unknown): baseMs and maxMs, the first and the largest backoff cap;\nretryBudget, the failed attempts after which the node is held until its goal (the node\'s spec) changes or\n`desiredstate retry NODE` (null: never);\nholdAfterBudget, whether a spent budget holds the node (default true for auth/permanent and for a class whose\nretryBudget the file writes; false: never held, retried for ever). Every delay (baseMs, maxMs, coolDownMs, probeWaitMs)\nis in ms, at most 24 days (2147483647).\n(defaults: transient/throttled/unknown 1 s -> 5 min, unlimited; auth/permanent held after 3; breaker opens once 5 different nodes fail in a row, probes after 30 s).\n--history keeps finished runs, operations, drift reports and events this long (default 30d, pruned at start and hourly; forever keeps all).\nSIGTERM/SIGINT let operations in flight (the deletes a goal load runs too) finish for up to 10 s (one cut off then is\nresolved by observing at the next start; the delete of a node removed from the goals is sent again).\nExit status: 0 after SIGTERM/SIGINT; 64 for a bad invocation, including a --listen address that cannot be bound\nand a --fault-policy file that is not there; 1 if the fault policy file is invalid or another desiredstate holds the state,\nand when its lock file or state file is removed or replaced while it runs (looked at every 2 s; its state directory deleted, say):\nanother desiredstate may hold the state then, so it logs a fatal line naming the file, starts nothing more and stops.',
    async run(argv, io) {
      const { values } = parse(argv, { interval: { type: 'string' }, listen: { type: 'string' }, concurrency: { type: 'string' }, 'allow-mass-deletion': { type: 'boolean' }, debounce: { type: 'string' }, 'fault-policy': { type: 'string' }, history: { type: 'string' } });
      formatFlag(values, ['text', 'json']); // the daemon's output is its log lines either way
      const history = parseHistory(values.history);
      const { run } = await import('./commands/run.ts');
      // Listened for here only for a caller that brought no listeners, and put away after.
      const stop = io.stop ?? stopOnSignals();
      try {
        return await run(context(values, io, 'info'), {
          interval: values.interval,
          listen: values.listen,
          concurrency: values.concurrency,
          allowMassDeletion: values['allow-mass-deletion'] === true,
          debounce: values.debounce,
          faultPolicy: values['fault-policy'],
          history,
        }, stop);
      } finally {
        if (stop !== io.stop) stop.close();
      }
    },
  },
  graph: {
    summary: 'print the compiled graph as DOT, Mermaid or JSON',
    usage: 'desiredstate graph [--goals DIR] [--format dot|mermaid|json]',
    help: 'Exit status: 0, or 1 when the goals do not compile.',
    async run(argv, io) {
      const { values } = parse(argv, {});
      formatFlag(values, ['dot', 'mermaid', 'json']);
      return (await import('./commands/goals.ts')).graph(context(values, io));
    },
  },
  check: {
    summary: 'the policy report: findings per node and goal, with severity, verdict and frameworks; touches nothing',
    usage: 'desiredstate check [--goals DIR] [--format text|json|sarif]',
    help: 'Verdicts: pass, warn, block (a finding at or above the policy\'s blockAt). --format sarif writes SARIF 2.1.0 for code-review tools.\nWhen the goals do not compile, text lists their errors on stderr; json and sarif still write a document of them on stdout.\nExit status: 0 nothing blocks, 1 something blocks or the goals do not compile.',
    async run(argv, io) {
      const { values } = parse(argv, {});
      const format = oneOf('format', values.format, ['text', 'json', 'sarif'] as const, 'text');
      return (await import('./commands/check.ts')).check(context(values, io), format);
    },
  },
  schema: {
    summary: 'print the JSON Schema of goal files, for editors',
    usage: 'desiredstate schema [--format json]',
    help: 'Point your editor\'s YAML language server at it, e.g. `# yaml-language-server: $schema=../schema/goal.schema.json`.\nExit status: 0.',
    async run(argv, io) {
      const { values } = parse(argv, {});
      formatFlag(values, ['json']);
      return (await import('./commands/meta.ts')).schema(context(values, io));
    },
  },
  status: {
    summary: 'nodes and their state, from the state store',
    usage: 'desiredstate status [--state DIR] [--format text|json]',
    help: 'The first line says whether a daemon serves this state (its pid and API address), or that there is no state yet;\n--format json has it as `daemon`. A goal revision the daemon rejected is listed with its errors;\ngoals that hold no nodes are said to be so (`emptyGoals`): the nodes listed are kept as they are, not reconciled.\nA backend whose circuit the running daemon has open is named, with what opened it and when its probe is due (`circuits`).\nExit status: 0, or 1 when the state cannot be read (DS_STATE_STORE: a damaged or foreign file, no permission).',
    async run(argv, io) {
      const { values } = parse(argv, {});
      formatFlag(values, ['text', 'json']);
      return (await import('./commands/state.ts')).status(context(values, io));
    },
  },
  drift: {
    summary: 'drift reports',
    usage: 'desiredstate drift [--state DIR] [--since 1h|TIMESTAMP] [--node ID] [--limit N] [--format text|json]',
    help: '--since takes a duration back from now (1h, 30m, 2d, 1h30m) or an ISO 8601 timestamp (2026-01-31, 2026-01-31T12:00:00Z;\nwithout a zone, local time). --limit keeps the N most recent. Reports are listed oldest first.\nExit status: 0, or 1 when the state cannot be read (DS_STATE_STORE).',
    async run(argv, io) {
      const { values } = parse(argv, { since: { type: 'string' }, node: { type: 'string' }, limit: { type: 'string' } });
      formatFlag(values, ['text', 'json']);
      const limit = parseCount('limit', values.limit, 1_000_000);
      return (await import('./commands/state.ts')).drift(context(values, io), { since: values.since, node: values.node, limit });
    },
  },
  history: {
    summary: 'past runs: when, goals commit, what changed',
    usage: 'desiredstate history [RUN] [--state DIR] [--limit 50] [--format text|json]',
    help: 'The last --limit runs (default 50), newest first. With RUN (its number), that run and what it did to each node:\nthe creates, updates and deletes it made, in order, with their outcome (the first --limit).\nExit status: 0, or 1 when the state cannot be read (DS_STATE_STORE).',
    async run(argv, io) {
      const { values, positionals } = parse(argv, { limit: { type: 'string' } }, 1);
      formatFlag(values, ['text', 'json']);
      const limit = parseCount('limit', values.limit, 1_000_000, 50);
      const runText = positionals[0];
      if (runText !== undefined && !/^[1-9][0-9]{0,14}$/.test(runText)) throw new UsageError(`history takes a run number such as 12, as history lists them (got "${runText}")`);
      const run = runText === undefined ? undefined : Number(runText);
      return (await import('./commands/state.ts')).history(context(values, io), { limit, run });
    },
  },
  retry: {
    summary: 'release a node held by the fault policy, or a failed one waiting out its backoff',
    usage: 'desiredstate retry NODE|--all [--goals DIR] [--state DIR] [--format text|json]',
    help: 'A node removed from the goals whose delete (prune, deletionPolicy: Delete) the fault policy gave up on is deleted again\n(until then it is held: neither apply nor a restarted daemon sends it a read or a delete).\nAny other node, one a policy holds among them, is left as it is, and retry says so. --all releases every node held by the fault policy or waiting\nout a backoff (after fixing what held them all: a password, a server), and those held because a read could not tell\nwhether an interrupted create made something (their interruption ends, as with retry NODE); nodes a policy holds stay held\n(it says how many: fix the finding).\nAny other node released keeps a create cut short (its timeout, a signal, a shutdown) interrupted: a failed one only skips\nits backoff, and its next read is told so (and may hold it rather than create it a second time).\nWith a daemon running (its address is in the state), asks it over its HTTP API (--all in one request); otherwise updates\nthe store (--all in one transaction). While a daemon or an apply holds the state and its API did not release the node\n(refused, or no answer), nothing is released.\nExit status: 0 (also for a node left as it is, and for one the goals declare that no pass has observed yet: the goals are read\nfor a node the state does not know, when there is a goal directory), 1 for an unknown node or when nothing could be released,\n64 for a bad invocation (among them a goal directory named with --goals or $DESIREDSTATE_GOALS that is not there, where the\ngoals are read: for a node the state does not know; retry of a node the state knows, and --all, read none).',
    async run(argv, io) {
      const { values, positionals } = parse(argv, { all: { type: 'boolean' } }, 1);
      formatFlag(values, ['text', 'json']);
      return (await import('./commands/state.ts')).retry(context(values, io), positionals[0], { all: values.all === true });
    },
  },
  scripts: {
    summary: 'review generated provisioning scripts and show their trust',
    usage: 'desiredstate scripts list|trust [--bar 0.94] | show HASH [--bar 0.94] | approve|reject HASH [--note TEXT] [--by NAME] | approve-run HASH --node ID [--note TEXT] [--by NAME] [--bar 0.94] [--goals DIR] [--state DIR] [--format text|json]',
    help: 'An unreviewed or rejected script never runs; approve releases the nodes held waiting for it, reject makes the next pass generate a new one.\nA reviewed script below the trust bar needs approve-run (one run of one node: the create, update or delete a pass held it for, with the input it had then, which it shows; void once that input changes; refused for a node that waits for none) in the environments its backend lists in requireApprovalBelowTrust.\nWith a daemon running, the nodes are released through it, which reconciles them at once; otherwise on the next pass.\ntrust shows each script\'s successes, failures, posterior mean, 5th percentile and gate (runs-alone, needs-approval, unreviewed, rejected); a create, update or delete is a success only when the script\'s own read, run right after it, finds it done (exit status alone earns nothing).\nThe trust bar (the gate of list, show, trust and approve-run) is --bar, else the strictest config.trust of the goals\' script\nbackends, read from the goal directory when there is one, else 0.94; approve and reject read no goals.\nHASH may be a prefix of 6 or more characters. Exit status: 0, 1 for an unknown or ambiguous script, an unknown node, a refused\napproval, or nodes that could not be released (the daemon refused or did not answer, or an apply holds the state),\n64 for a bad invocation (among them a goal directory named with --goals or $DESIREDSTATE_GOALS that is not there, where the\ngoals are read).',
    async run(argv, io) {
      const { values, positionals } = parse(argv, { note: { type: 'string' }, by: { type: 'string' }, node: { type: 'string' }, bar: { type: 'string' } }, 2);
      formatFlag(values, ['text', 'json']);
      const bar = values.bar === undefined ? undefined : Number(values.bar);
      if (bar !== undefined && !(bar > 0 && bar < 1)) throw new UsageError('--bar takes a number between 0 and 1');
      return (await import('./commands/scripts.ts')).scripts(context(values, io), positionals[0], { hash: positionals[1], note: values.note, by: values.by, node: values.node, policy: bar === undefined ? undefined : { bar, quantile: 0.05 } });
    },
  },
  backends: {
    summary: 'configured backends, their types and health',
    usage: 'desiredstate backends [--goals DIR] [--format text|json]',
    help: 'The goals\' errors and warnings, if any, are listed first, as validate shows them (--format json: as `diagnostics`), with the backends that compiled.\nExit status: 0, or 1 when any backend is unhealthy or the goals do not compile.',
    async run(argv, io) {
      const { values } = parse(argv, {});
      formatFlag(values, ['text', 'json']);
      return (await import('./commands/meta.ts')).backends(context(values, io));
    },
  },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  return [
    'desiredstate — keeps infrastructure equal to the goals committed to git',
    '',
    'Usage: desiredstate COMMAND [options]',
    '',
    'Commands:',
    ...Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    COMMON_HELP,
    '',
    'Run `desiredstate COMMAND --help` (or `desiredstate help COMMAND`, `desiredstate --help COMMAND`) for a command\'s own',
    'options and exit status, `desiredstate --version` for the version.',
  ].join('\n');
}

function commandHelp(command: Command): string {
  return `${command.summary}\n\nUsage: ${command.usage}\n\n${command.help}\n\n${COMMON_HELP}`;
}

/** Runs the CLI; resolves with the exit status. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const [name, ...rest] = commandFirst(argv);
  if (name === undefined) {
    // A bad invocation: a one-line reason (CLI.md), the list is one --help away.
    process.stderr.write(NO_COMMAND);
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    // `desiredstate help plan`, `desiredstate --help plan`: that command's help.
    const topic = rest.find((a) => !a.startsWith('-'));
    if (topic === undefined) {
      io.out(mainHelp());
      return EXIT.ok;
    }
    const command = ownValue(commands, topic);
    if (command === undefined) {
      process.stderr.write(`desiredstate: unknown command "${oneLine(topic)}"; run desiredstate --help\n`);
      return EXIT.usage;
    }
    io.out(commandHelp(command));
    return EXIT.ok;
  }
  if (name === '--version') {
    io.out(`desiredstate ${VERSION}`);
    return EXIT.ok;
  }
  if (name.startsWith('-')) {
    // Options and no command after them (commandFirst found none to put first).
    const problem = leadingProblem(argv);
    if (problem === 'help') {
      io.out(mainHelp());
      return EXIT.ok;
    }
    process.stderr.write(
      problem === 'none'
        ? NO_COMMAND
        : `desiredstate: ${oneLine(problem.option)} cannot come before the command (only --goals, --state, --format and --log-level can); run desiredstate --help\n`,
    );
    return EXIT.usage;
  }
  const command = ownValue(commands, name);
  if (command === undefined) {
    process.stderr.write(`desiredstate: unknown command "${oneLine(name)}"; run desiredstate --help\n`);
    return EXIT.usage;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(commandHelp(command));
    return EXIT.ok;
  }
  // With --format json, a failure that ends the command before it wrote its document still leaves one on
  // stdout (`{"error": {code, message}}`): a pipe into jq gets a document, not an empty stream.
  let wrote = false;
  const tracked: Io = { ...io, out: (text) => ((wrote = true), io.out(text)) };
  const errorDocument = (code: string, message: string): void => {
    if (!wrote && asksForJson(rest)) io.out(JSON.stringify({ error: { code, message } }, null, 2));
  };
  try {
    return await command.run(rest, tracked);
  } catch (err) {
    if (err instanceof UsageError) {
      // A bad invocation: its flags, --format among them, may not mean what they seem.
      process.stderr.write(`desiredstate ${name}: ${oneLine(err.message)}\n`);
      return EXIT.usage;
    }
    if (err instanceof DesiredStateError) {
      errorDocument(err.code, err.message);
      const plain = err.code === ErrorCodes.StateLocked || err.code === ErrorCodes.Interrupted;
      // One line, as every reason: a message may quote what was typed (`--node "$ID"`).
      process.stderr.write(`desiredstate ${name}: ${plain ? '' : `${err.code}: `}${oneLine(err.message)}\n`);
      return err.code === ErrorCodes.Interrupted ? EXIT.interrupted : EXIT.failed;
    }
    const sqlite = (err as { code?: unknown }).code;
    if (typeof sqlite === 'string' && (sqlite.startsWith('SQLITE_CORRUPT') || sqlite === 'SQLITE_NOTADB')) {
      // Damage the open did not see (a page past the first ones): the state file's, not a defect of ours.
      const message = `the state file is damaged (${sqlite}: ${errorMessage(err)}); restore it from a backup (\`PRAGMA integrity_check\` in sqlite3 tells what is damaged)`;
      errorDocument(ErrorCodes.StateStore, message);
      process.stderr.write(`desiredstate ${name}: ${ErrorCodes.StateStore}: ${oneLine(message)}\n`);
      return EXIT.failed;
    }
    errorDocument(ErrorCodes.Internal, errorMessage(err));
    // The stack's own lines kept; control characters in what it quotes escaped, as everywhere else.
    process.stderr.write(terminalSafe(`desiredstate ${name}: internal error: ${errorMessage(err)}\n${err instanceof Error ? (err.stack ?? '') : ''}\n`));
    return 70;
  }
}

/** Whether the arguments ask for `--format json` (`--format json` or `--format=json`), read without parsing them. */
function asksForJson(argv: readonly string[]): boolean {
  return argv.some((a, i) => a === '--format=json' || (a === '--format' && argv[i + 1] === 'json'));
}
