import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import type Saslprep from '@mongodb-js/saslprep';

/**
 * SCRAM-SHA-256 verifiers as PostgreSQL stores them (RFC 5802 / 7677):
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 parts.
 * We compute the verifier ourselves so the password never travels to the
 * server, and check a stored verifier against the desired password to
 * detect password drift without keeping the password anywhere.
 */

const pbkdf2Async = promisify(pbkdf2);

let saslprepModule: typeof Saslprep | undefined;

/**
 * SASLprep, loaded the first time a password is not ASCII: the library builds its Unicode tables
 * as it loads (~2 MB of heap), which every start-up snapshot would otherwise carry and every
 * one-shot command deserialize (bench/postgres/README.md).
 */
function loadSaslprep(): typeof Saslprep {
  return (saslprepModule ??= createRequire(import.meta.url)('@mongodb-js/saslprep') as typeof Saslprep);
}

/** PostgreSQL's default `scram_iterations`. */
export const SCRAM_ITERATIONS = 4096;

/** The parts of a stored verifier. */
export interface ScramVerifier {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export function parseScramVerifier(text: string): ScramVerifier | undefined {
  const m = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (m === null) return undefined;
  const iterations = Number(m[1]);
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000) return undefined;
  return { iterations, salt: Buffer.from(m[2]!, 'base64'), storedKey: Buffer.from(m[3]!, 'base64'), serverKey: Buffer.from(m[4]!, 'base64') };
}

/**
 * The password as PostgreSQL hashes it (`pg_saslprep`, on the server for
 * `PASSWORD 'plain'` and in libpq): ASCII as it is; otherwise SASLprep
 * (RFC 4013: spaces mapped, some characters mapped to nothing, NFKC), and
 * the password as given when SASLprep refuses it (a prohibited or
 * unassigned code point, mixed directions) or leaves nothing. PostgreSQL
 * checks the mapped string before normalisation, SASLprep (and this
 * library) after: they disagree only on characters whose NFKC form is
 * allowed where they were not (U+0340, U+0341), or the reverse.
 */
function saslPrepared(password: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(password)) return password;
  const saslprep = loadSaslprep(); // outside the try: a library that does not load is an error, not a refusal
  try {
    const prepared = saslprep(password);
    return prepared === '' ? password : prepared;
  } catch {
    return password;
  }
}

/** The forms to try against a stored verifier: the prepared one, and the one given (a client that skips SASLprep, as node-postgres does). */
function candidates(password: string): string[] {
  const prepared = saslPrepared(password);
  return prepared === password ? [password] : [prepared, password];
}

async function keys(password: string, salt: Buffer, iterations: number): Promise<{ storedKey: Buffer; serverKey: Buffer }> {
  const salted = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return { storedKey, serverKey };
}

/** A fresh verifier for `password` (random 16-byte salt), to send as `PASSWORD '<verifier>'`. */
export async function scramVerifier(password: string, options: { iterations?: number; salt?: Buffer } = {}): Promise<string> {
  const iterations = options.iterations ?? SCRAM_ITERATIONS;
  const salt = options.salt ?? randomBytes(16);
  const { storedKey, serverKey } = await keys(candidates(password)[0]!, salt, iterations);
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/**
 * Whether `password` matches a stored verifier: `true`/`false`, or
 * `undefined` when the verifier is of a kind we cannot check.
 * Also accepts legacy `md5` verifiers (md5(password || role name)).
 */
export async function verifyPassword(password: string, stored: string, roleName: string): Promise<boolean | undefined> {
  if (stored.startsWith('md5') && stored.length === 35) {
    return candidates(password).some((p) => safeEqual(Buffer.from(`md5${createHash('md5').update(p + roleName).digest('hex')}`), Buffer.from(stored)));
  }
  const v = parseScramVerifier(stored);
  if (v === undefined) return undefined;
  for (const p of candidates(password)) {
    const k = await keys(p, v.salt, v.iterations);
    if (safeEqual(k.storedKey, v.storedKey) && safeEqual(k.serverKey, v.serverKey)) return true;
  }
  return false;
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
