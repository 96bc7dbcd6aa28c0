// The digest of what a bundle is built from: every TypeScript file under src/
// (path and content) and package-lock.json (the dependencies bundled in). The
// build records it in dist/build.json; bin/desiredstate.js runs the bundle
// only when the digest still matches, so an edited or switched tree never
// runs stale code. Plain JavaScript, no dependencies: the launcher loads it
// before anything else.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The .ts files under `src`, as sorted paths relative to it. A walk of our own: readdirSync's `recursive` took ~4 ms of every start for ~120 files, this ~0.5 ms. */
function sourceFiles(src) {
  const out = [];
  const walk = (dir, prefix) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
      else if (e.name.endsWith('.ts')) out.push(`${prefix}${e.name}`);
    }
  };
  walk(src, '');
  return out.sort();
}

/** Hex SHA-256 over src/**\/*.ts and package-lock.json under `root`. */
export function sourceDigest(root) {
  const src = join(root, 'src');
  const files = sourceFiles(src);
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(src, f)));
    h.update('\0');
  }
  h.update(readFileSync(join(root, 'package-lock.json')));
  return h.digest('hex');
}

/**
 * A cheap stand-in for the digest, as git's index is for content: the path,
 * size and modification time of the same files. While it is unchanged, the
 * digest recorded with it is still the digest (a stat per file instead of
 * reading and hashing them all on every start).
 */
export function sourceFingerprint(root) {
  const src = join(root, 'src');
  const h = createHash('sha256');
  for (const f of sourceFiles(src)) {
    const st = statSync(join(src, f));
    h.update(`${f}\0${st.size}\0${st.mtimeMs}\0`);
  }
  const lock = statSync(join(root, 'package-lock.json'));
  h.update(`${lock.size}\0${lock.mtimeMs}`);
  return h.digest('hex');
}
