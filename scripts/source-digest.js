// The digest of what a bundle is built from: every TypeScript file under src/
// (path and content) and package-lock.json (the dependencies bundled in). The
// build records it in dist/build.json; bin/desiredstate.js runs the bundle
// only when the digest still matches, so an edited or switched tree never
// runs stale code. Plain JavaScript, no dependencies: the launcher loads it
// before anything else.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Hex SHA-256 over src/**\/*.ts and package-lock.json under `root`. */
export function sourceDigest(root) {
  const src = join(root, 'src');
  const files = readdirSync(src, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts'))
    .sort();
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(src, f)));
    h.update('\0');
  }
  h.update(readFileSync(join(root, 'package-lock.json')));
  return h.digest('hex');
}
