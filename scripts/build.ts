/**
 * Bundles the CLI into dist/ (`npm run build`; `npm ci` runs it as
 * `prepare`). Node runs the TypeScript sources directly, so the bundle is
 * only a faster start: one module graph of a few files instead of ~250 ESM
 * modules (zod, pino, xstate, pg and ~110 of ours) costs a one-shot command
 * ~0.1 s less. bin/desiredstate.js uses it while dist/build.json's digest
 * matches the sources (scripts/source-digest.js), and the sources otherwise.
 * Without rolldown (a production install without dev dependencies) it
 * builds nothing and says so; the CLI then runs from the sources.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type * as Rolldown from 'rolldown';
import { sourceDigest, sourceFingerprint } from './source-digest.js';

const root = resolve(import.meta.dirname, '..');
const out = join(root, 'dist');

let rolldown: typeof Rolldown;
try {
  rolldown = await import('rolldown');
} catch {
  console.warn('desiredstate build: rolldown is not installed (no dev dependencies?); the CLI runs from the TypeScript sources');
  process.exit(0);
}

const digest = sourceDigest(root);
rmSync(out, { recursive: true, force: true });
await rolldown.build({
  input: join(root, 'src/cli/main.ts'),
  platform: 'node',
  // A native addon, loaded through `bindings` from its own directory.
  external: ['better-sqlite3'],
  logLevel: 'warn',
  output: { dir: out, format: 'esm', entryFileNames: 'main.js', chunkFileNames: '[name]-[hash].js', sourcemap: true },
});
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'build.json'), `${JSON.stringify({ digest, fingerprint: sourceFingerprint(root), builtAt: new Date().toISOString() }, null, 2)}\n`);
console.log(`desiredstate build: dist/ from sources ${digest.slice(0, 12)}`);
