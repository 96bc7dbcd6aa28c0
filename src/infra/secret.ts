import { createHash, randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { z } from 'zod';
import { DesiredStateError, didYouMean, ErrorCodes, fault, FaultError, holdsNodeReference, ownValue, readAtMost } from '../runtime/index.ts';
import type { Fault } from '../runtime/index.ts';
import { envNameSchema } from './process.ts';

/**
 * A secret is never written inline: it names where the value lives. The
 * value is read only when an operation needs it and is never logged, printed
 * or stored (a hash may be stored to notice a change).
 */
export const secretRefSchema = z.union(
  [
    z.strictObject({ fromEnv: envNameSchema.describe('Name of the environment variable holding the secret.') }),
    // A reference in the path is refused where the goal writes it (`referencedSecretPaths`), not here: this
    // schema judges resolved specs too, where a `$${` written in the goal is a plain `${`.
    z.strictObject({ fromFile: z.string().min(1).describe('File holding the secret, relative to the working directory, its path spelled out (never a ${nodes…} reference).') }),
  ],
  {
    error: (iss) =>
      typeof iss.input === 'string'
        ? 'a secret must not be written inline: use { fromEnv: NAME } or { fromFile: path }'
        : 'a secret reference is { fromEnv: NAME } or { fromFile: path }',
  },
).meta({ secret: true, description: 'A secret reference: { fromEnv: NAME } or { fromFile: path }. Never an inline value.' });

export type SecretRef = z.infer<typeof secretRefSchema>;

export function isSecretRef(v: unknown): v is SecretRef {
  return secretRefSchema.safeParse(v).success;
}

/** What a secret is shown as, anywhere it would appear. */
export const SECRET_MASK = '<secret>';

export function describeSecretRef(ref: SecretRef): string {
  return 'fromEnv' in ref ? `env:${ref.fromEnv}` : `file:${ref.fromFile}`;
}

/** The most a secret file may hold: keys and certificate chains fit; a device that never ends does not. */
export const MAX_SECRET_FILE_BYTES = 1024 * 1024;

/**
 * Reads a secret's value. Throws a coded error that names the reference, never the value. An empty
 * value is refused as unavailable: it is a variable set to nothing (a unit file's `Environment=PW=`)
 * or a file not yet written, never a secret, and PostgreSQL takes an empty password for none.
 */
export async function resolveSecret(ref: SecretRef, options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<string> {
  if ('fromEnv' in ref) {
    const v = ownValue(options.env ?? process.env, ref.fromEnv);
    if (v === undefined || v === '') {
      throw new DesiredStateError(ErrorCodes.SecretUnavailable, `secret environment variable ${ref.fromEnv} is ${v === undefined ? 'not set' : 'empty'}`, { context: { ref: describeSecretRef(ref) } });
    }
    return v;
  }
  let bytes: Awaited<ReturnType<typeof readAtMost>>;
  // Relative to the working directory, as --goals, --state and a backend's root are.
  const path = resolve(options.cwd ?? process.cwd(), ref.fromFile);
  const where = path === ref.fromFile ? '' : ` (${path}: relative paths are to the working directory)`;
  try {
    bytes = await readAtMost(path, MAX_SECRET_FILE_BYTES);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    throw new DesiredStateError(ErrorCodes.SecretUnavailable, `secret file ${ref.fromFile}${where} cannot be read${code === undefined ? '' : `: ${code}`}`, { cause, context: { ref: describeSecretRef(ref) } });
  }
  if (bytes !== undefined && !Buffer.isBuffer(bytes)) {
    // A FIFO with no writer blocked apply where no signal could end it; a device may never end.
    throw new DesiredStateError(ErrorCodes.SecretUnavailable, `secret file ${ref.fromFile}${where} cannot be read: it is ${bytes.special}, not a regular file`, { context: { ref: describeSecretRef(ref) } });
  }
  if (bytes === undefined) {
    throw new DesiredStateError(ErrorCodes.SecretUnavailable, `secret file ${ref.fromFile} holds more than ${MAX_SECRET_FILE_BYTES} bytes`, { context: { ref: describeSecretRef(ref) } });
  }
  const value = bytes.toString('utf8').replace(/\r?\n$/, '');
  if (value === '') throw new DesiredStateError(ErrorCodes.SecretUnavailable, `secret file ${ref.fromFile} is empty`, { context: { ref: describeSecretRef(ref) } });
  return value;
}

/** A salted digest of a secret value, safe to store: it notices a change without keeping the value. */
export function secretDigest(value: string, salt: string): string {
  return createHash('sha256').update(salt).update('\0').update(value).digest('hex');
}

/**
 * `<salt>:<secretDigest(value, salt)>`, a fresh salt unless one is given: what a backend records (in
 * a node's memo, never its outputs) of the secret it last applied, to tell later whether the secret
 * was rotated since (`saltedDigestMatches`) without keeping it.
 */
export function saltedSecretDigest(value: string, salt = randomBytes(8).toString('hex')): string {
  return `${salt}:${secretDigest(value, salt)}`;
}

/** Whether `recorded` is a `saltedSecretDigest` of `value`. */
export function saltedDigestMatches(recorded: unknown, value: string): recorded is string {
  if (typeof recorded !== 'string') return false;
  const i = recorded.indexOf(':');
  return i > 0 && saltedSecretDigest(value, recorded.slice(0, i)) === recorded;
}

/** A secret `resolveSecret` could not read, as the permanent fault a backend reports (with what to do); undefined for any other error. */
export function secretUnavailableFault(err: unknown): Fault | undefined {
  if (!(err instanceof DesiredStateError) || err.code !== ErrorCodes.SecretUnavailable) return undefined;
  return fault('permanent', err.message, { code: err.code, hint: 'provide the secret (environment variable or file) named by the reference' });
}

/** Where secret references are read from: the daemon's environment and working directory. */
export interface SecretSource {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

/** Whether `value` holds a secret reference anywhere (a map's value, a list's item, at any depth). */
export function holdsSecretRef(value: unknown): boolean {
  if (Array.isArray(value)) return value.some(holdsSecretRef);
  if (typeof value !== 'object' || value === null) return false;
  return isRefShaped(value) || Object.values(value).some(holdsSecretRef);
}

/** A secret reference, checked against the schema only when it may be one: a map of one key, fromEnv or fromFile. */
function isRefShaped(value: unknown): value is SecretRef {
  if (typeof value !== 'object' || value === null) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && (keys[0] === 'fromEnv' || keys[0] === 'fromFile') && isSecretRef(value);
}

/** A map that looks meant as a secret reference (it has a `fromEnv` or `fromFile` key), whether or not it is one, and the path to it. */
export interface SecretRefLookalike {
  readonly path: (string | number)[];
  readonly map: object;
}

/**
 * Each map in `value` that looks meant as a secret reference, at any depth, with the path to it (not
 * looking inside it). One path, walked down and back up, copied only for what is found: every spec
 * with a reference meets this each time it is resolved, and most hold none.
 */
export function secretRefLookalikes(value: unknown): SecretRefLookalike[] {
  return mapsWhere(value, (map) => 'fromEnv' in map || 'fromFile' in map);
}

/** Each map in `value` that `pick` takes, at any depth, with the path to it (not looking inside it). */
function mapsWhere(value: unknown, pick: (map: object) => boolean): SecretRefLookalike[] {
  const found: SecretRefLookalike[] = [];
  const path: (string | number)[] = [];
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) return;
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        path.push(i);
        walk(item);
        path.pop();
      });
    } else if (pick(v)) {
      found.push({ path: [...path], map: v });
    } else {
      for (const [k, item] of Object.entries(v)) {
        path.push(k);
        walk(item);
        path.pop();
      }
    }
  };
  walk(value);
  return found;
}

/**
 * The key of a secret reference that the one key of `map` misspells (`fromenv`, `from_file`, `FromEnv`,
 * `fromEnvv`: the same but for case, `_` and `-`, or within two edits), its value a name or path; else undefined.
 */
function misspeltRefKey(map: object): string | undefined {
  const entries = Object.entries(map);
  const [key, v] = entries[0] ?? [];
  if (entries.length !== 1 || key === undefined || typeof v !== 'string' || key === 'fromEnv' || key === 'fromFile') return undefined;
  return didYouMean(key.replace(/[-_]/g, ''), ['fromEnv', 'fromFile']);
}

/**
 * Where `value` holds a map that looks meant as a secret reference but is not one (another key beside
 * `fromEnv` or `fromFile`, both, an empty path, an env name with a space, a misspelt key: `fromenv`):
 * such a map would be sent as plain data, the secret never read. Each with the path to it.
 */
export function malformedSecretRefs(value: unknown): { path: (string | number)[]; message: string }[] {
  const misspelt = mapsWhere(value, (map) => misspeltRefKey(map) !== undefined).map(({ path, map }) => ({
    path,
    message: `${Object.keys(map).join('')} is no key of a secret reference (did you mean ${misspeltRefKey(map)}?): as it is, the map would be sent as data and no secret read`,
  }));
  return [...misspelt, ...secretRefLookalikes(value).flatMap(({ path, map }) => {
    if (isRefShaped(map)) return [];
    const keys = Object.keys(map);
    const [key] = keys;
    const why =
      keys.length > 1
        ? `a secret reference has one key, fromEnv or fromFile; this map has ${keys.join(', ')}`
        : key === 'fromEnv'
          ? `fromEnv names an environment variable (letters, digits and _, not starting with a digit), not ${JSON.stringify((map as { fromEnv: unknown }).fromEnv)}`
          : `fromFile is the path of the file holding the secret, not ${JSON.stringify((map as { fromFile: unknown }).fromFile)}`;
    return [{ path, message: `${why}: as it is, the map would be sent as data and no secret read` }];
  })];
}

/**
 * Each `{ fromFile }` secret reference in `value` (at any depth) whose path holds a `${nodes…}` reference,
 * with the path to that path and why it is refused: an output would choose which file the daemon reads a
 * secret from (the name in `fromEnv` is refused by its pattern already). A rule of the goal as written,
 * checked where it is compiled, never by a schema a resolved spec meets: resolved, the `$${` of a literal
 * `${` is one (a spec compiled before the rule, restored from the state, meets `outputSecretRefFault`).
 */
export function referencedSecretPaths(value: unknown): { path: (string | number)[]; message: string }[] {
  return secretRefLookalikes(value).flatMap(({ path, map }) =>
    isRefShaped(map) && 'fromFile' in map && holdsNodeReference(map.fromFile)
      ? [{ path: [...path, 'fromFile'], message: `fromFile ${JSON.stringify(map.fromFile)} takes its path from a reference: a secret is read only where the goal names it, the path of its file spelled out, never one an output gives` }]
      : [],
  );
}

/** The secret references in `value`, at any depth, in the order they are written. */
export function secretRefsIn(value: unknown): SecretRef[] {
  if (Array.isArray(value)) return value.flatMap(secretRefsIn);
  if (typeof value !== 'object' || value === null) return [];
  return isRefShaped(value) ? [value] : Object.values(value).flatMap(secretRefsIn);
}

/**
 * The secret references in `value` that cannot be read from `source` now, each with why (the message
 * of the fault an operation needing it would fail with). What `plan` warns of under a create that
 * would fail on them, where the observation did not need the secret. Each secret is read only to
 * find out: its value goes nowhere.
 */
export async function unreadableSecretRefs(value: unknown, source: SecretSource): Promise<{ ref: string; reason: string }[]> {
  const refs = secretRefsIn(value);
  const out: { ref: string; reason: string }[] = [];
  for (const ref of refs) {
    try {
      await resolveSecret(ref, source);
    } catch (err) {
      const unavailable = secretUnavailableFault(err);
      if (unavailable === undefined) throw err;
      out.push({ ref: describeSecretRef(ref), reason: unavailable.message });
    }
  }
  return out;
}

/**
 * `value` with every secret reference in it (at any depth) replaced by the secret, read now, never at
 * validate or compile time. The values read are handed to `read` (a call's `addSecrets`, so that what
 * the program given them answers hides them again). A reference that cannot be read is a permanent
 * fault naming it.
 */
export async function resolveSecretRefs(value: unknown, source: SecretSource, read: (values: string[]) => void): Promise<unknown> {
  const secrets: string[] = [];
  const visit = async (v: unknown): Promise<unknown> => {
    if (isRefShaped(v)) {
      try {
        const secret = await resolveSecret(v, source);
        secrets.push(secret);
        return secret;
      } catch (err) {
        const unavailable = secretUnavailableFault(err);
        throw unavailable === undefined ? err : new FaultError(unavailable);
      }
    }
    if (Array.isArray(v)) return Promise.all(v.map(visit));
    if (typeof v === 'object' && v !== null) return Object.fromEntries(await Promise.all(Object.entries(v).map(async ([k, x]) => [k, await visit(x)] as const)));
    return v;
  };
  const resolved = await visit(value);
  read(secrets);
  return resolved;
}
