import { lineOps, maskSecretLines } from '../../infra/index.ts';
import { assertNever } from '../../runtime/index.ts';
import type { FieldDiff, Observation, ObservationMemo, Outputs } from '../../runtime/index.ts';
import { wrongKind } from './errors.ts';
import { formatMode, modeDiffers } from './paths.ts';

/** Files below this size (both sides) get a line diff in the drift report. */
export const DETAIL_LIMIT = 4096;

/** What is on disk at a node's path, as the client read it. */
export type ActualEntry =
  | { readonly kind: 'missing' }
  | {
      readonly kind: 'file';
      readonly size: number;
      readonly mode: number;
      readonly uid: number;
      readonly gid: number;
      /** The owner and group as names where known, else the numeric ids. */
      readonly owner: string;
      readonly group: string;
      /** Present when the client hashed the content (always when the size matches the desired size). */
      readonly sha256?: string | undefined;
      /** Present for small text files read for a diff. */
      readonly text?: string | undefined;
      /** What to remember of this reading (a memo still holding, or a new one for content just read). */
      readonly memo?: ObservationMemo | undefined;
      /** The inode and ctime it was found with: what a correction checks it still is before replacing it (`FileWrite.found`). */
      readonly ino?: number | undefined;
      readonly ctimeMs?: number | undefined;
      /** Its hard links (names) in all: new content, a new file, goes to this one name only. */
      readonly links?: number | undefined;
    }
  | { readonly kind: 'directory'; readonly mode: number }
  | { readonly kind: 'symlink'; readonly target: string; readonly uid: number; readonly gid: number }
  | { readonly kind: 'other'; readonly what: string };

export type ActualKind = ActualEntry['kind'];

/** The desired file, with everything the comparison needs already computed. */
export interface FileExpectation {
  readonly absPath: string;
  readonly content: string;
  readonly size: number;
  readonly sha256: string;
  readonly mode: number;
  readonly owner?: { readonly name: string; readonly id: number } | undefined;
  readonly group?: { readonly name: string; readonly id: number } | undefined;
}

export interface DirectoryExpectation {
  readonly absPath: string;
  readonly mode: number;
}

export interface SymlinkExpectation {
  readonly absPath: string;
  readonly target: string;
}

const kindNames: Readonly<Record<ActualKind, string>> = {
  missing: 'missing path',
  file: 'file',
  directory: 'directory',
  symlink: 'symlink',
  other: 'special file',
};

/** What is at a path, in words (`socket`, `fifo`, `device` for the special files). */
export function kindName(actual: ActualEntry): string {
  return actual.kind === 'other' ? actual.what : kindNames[actual.kind];
}

/**
 * The outputs a kind declares besides `path` that something of another kind in its place has not: each
 * one still given, null. A reference to it waits for the resource (`outputs-missing`); a key left out
 * would be an output the node does not give, a permanent fault of the node referring to it.
 */
const UNKNOWN_OUTPUTS: Readonly<Record<'file' | 'directory' | 'symlink', Outputs>> = { file: { sha256: null }, directory: {}, symlink: { target: null } };

/**
 * Something of another kind where the node's resource should be: drift on `kind`, which the backend
 * never corrects (it deletes nothing to make room), so it is reported, and a goal that asks for it
 * fails, naming it (`FieldDiff.cannotCorrect`). Where a directory should be, what lies in it cannot be
 * managed meanwhile (it would be read and written through a symlink, or fail on a file): its dependents
 * wait for it (`FieldDiff.blocksDependents`).
 */
function wrongKindObservation(absPath: string, actual: ActualEntry, wanted: 'file' | 'directory' | 'symlink'): Observation {
  const found = kindName(actual);
  const why = wrongKind(absPath, found, wanted).fault;
  const cannotCorrect = `${why.message}; ${why.hint ?? ''}`.replace(/; $/, '');
  return {
    status: 'drifted',
    diffs: [{ path: 'kind', desired: wanted, actual: found, cannotCorrect, ...(wanted === 'directory' ? { blocksDependents: true as const } : {}) }],
    outputs: { path: absPath, ...UNKNOWN_OUTPUTS[wanted] },
  };
}

/** `sha256:ab12cd34ef56… (120 bytes)`, or only the size when the content was not hashed. */
export function describeContent(sha256: string | undefined, size: number): string {
  return sha256 === undefined ? `${size} bytes (not hashed)` : `sha256:${sha256.slice(0, 12)}… (${size} bytes)`;
}

export function observeFile(expect: FileExpectation, actual: ActualEntry): Observation {
  switch (actual.kind) {
    case 'missing':
      return { status: 'absent' };
    case 'directory':
    case 'symlink':
    case 'other':
      return wrongKindObservation(expect.absPath, actual, 'file');
    case 'file': {
      const diffs: FieldDiff[] = [];
      if (actual.size !== expect.size || actual.sha256 !== expect.sha256) {
        const detail =
          actual.text !== undefined && expect.size < DETAIL_LIMIT && actual.size < DETAIL_LIMIT ? lineDiff(actual.text, expect.content) : undefined;
        diffs.push({
          path: 'content',
          desired: describeContent(expect.sha256, expect.size),
          actual: describeContent(actual.sha256, actual.size),
          ...(detail === undefined ? {} : { detail }),
        });
      }
      if (modeDiffers(actual.mode, expect.mode)) diffs.push({ path: 'mode', desired: formatMode(expect.mode), actual: formatMode(actual.mode) });
      if (expect.owner !== undefined && actual.uid !== expect.owner.id) diffs.push({ path: 'owner', desired: expect.owner.name, actual: actual.owner });
      if (expect.group !== undefined && actual.gid !== expect.group.id) diffs.push({ path: 'group', desired: expect.group.name, actual: actual.group });
      const outputs: Outputs = { path: expect.absPath, sha256: actual.sha256 ?? null };
      return diffs.length === 0 ? { status: 'upToDate', outputs, memo: actual.memo } : { status: 'drifted', diffs, outputs, memo: actual.memo };
    }
    default:
      return assertNever(actual, 'entry');
  }
}

export function observeDirectory(expect: DirectoryExpectation, actual: ActualEntry): Observation {
  switch (actual.kind) {
    case 'missing':
      return { status: 'absent' };
    case 'file':
    case 'symlink':
    case 'other':
      return wrongKindObservation(expect.absPath, actual, 'directory');
    case 'directory': {
      const outputs: Outputs = { path: expect.absPath };
      if (!modeDiffers(actual.mode, expect.mode)) return { status: 'upToDate', outputs };
      return { status: 'drifted', diffs: [{ path: 'mode', desired: formatMode(expect.mode), actual: formatMode(actual.mode) }], outputs };
    }
    default:
      return assertNever(actual, 'entry');
  }
}

export function observeSymlink(expect: SymlinkExpectation, actual: ActualEntry): Observation {
  switch (actual.kind) {
    case 'missing':
      return { status: 'absent' };
    case 'file':
    case 'directory':
    case 'other':
      return wrongKindObservation(expect.absPath, actual, 'symlink');
    case 'symlink': {
      if (actual.target === expect.target) return { status: 'upToDate', outputs: { path: expect.absPath, target: expect.target } };
      return {
        status: 'drifted',
        diffs: [{ path: 'target', desired: expect.target, actual: actual.target }],
        outputs: { path: expect.absPath, target: actual.target },
      };
    }
    default:
      return assertNever(actual, 'entry');
  }
}

/**
 * A small unified-style line diff (`-` actual, `+` desired) of two short
 * texts: common head and tail are trimmed, the middle is aligned by LCS.
 * Lines are compared with their `\n`, so that a missing or extra final
 * newline is a changed last line, marked as diff(1) marks it.
 */
export function lineDiff(actual: string, desired: string): string {
  const a = linesOf(actual);
  const d = linesOf(desired);
  let head = 0;
  while (head < a.length && head < d.length && a[head] === d[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < d.length - head && a[a.length - 1 - tail] === d[d.length - 1 - tail]) tail++;
  const am = a.slice(head, a.length - tail);
  const dm = d.slice(head, d.length - tail);
  // Aligned by LCS over the differing middle only; both texts are under DETAIL_LIMIT bytes.
  const ops = lineOps(am, dm);
  // A secret a hand edit wrote in (`DB_PASSWORD=…`) is not logged and stored with the report; read
  // from the top, so that the body of a private key whose armour is in the common head is masked too.
  const shown = maskSecretLines([...a.slice(0, head), ...ops.map((op) => op.line)].map(withoutNewline)).slice(head);
  const body = ops.flatMap((op, i) => [`${op.kind}${shown[i]!}`, ...(op.line.endsWith('\n') ? [] : [NO_NEWLINE])]);
  return ['--- actual', '+++ desired', `@@ line ${head + 1} @@`, ...body].join('\n');
}

/** diff(1)'s mark after a last line that has no newline. */
const NO_NEWLINE = '\\ No newline at end of file';

/** The lines of a text, each with its `\n` (the last one without, when the text does not end in one). */
function linesOf(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

function withoutNewline(line: string): string {
  return line.endsWith('\n') ? line.slice(0, -1) : line;
}
