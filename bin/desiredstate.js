#!/usr/bin/env node
// The sources are TypeScript run directly by Node 24's type stripping; a
// bundle of them (dist/, built by `npm ci`) only makes the start faster. The
// project pins Node 24 as a dependency, so npm scripts and `npx desiredstate`
// find it first on the PATH.
const [major] = process.versions.node.split('.').map(Number);
if (major === undefined || major < 24) {
  console.error(`desiredstate needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx desiredstate) so the pinned runtime is used`);
  process.exit(70);
}
// Cache compiled (and type-stripped) modules on disk: it more than halves
// the start-up of every command (NODE_DISABLE_COMPILE_CACHE=1 turns it off).
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
// The launch itself (signals taken at the first moment for `run`, stdout, the exit) is a module of
// the sources, also under the bundle: the one definition, shared with the start-up snapshot's
// launcher (bin/desiredstate); the compile cache makes its type stripping a one-off.
const { launch, takeSignals } = await import('../src/cli/launch.ts');
const stop = takeSignals(process.argv.slice(2));
const { entry, program } = await entryPoint();
const { main } = await import(entry);
await launch(main, process.argv.slice(2), { program, stop });

/**
 * The program's digest (sources and dependency lock; it also keys the
 * compiled-goal cache) and what to run: the bundle in dist/ (`npm run
 * build`, run by `npm ci`) when it was built from exactly these sources,
 * else the TypeScript sources themselves — a faster start, never different
 * code. DESIREDSTATE_FROM_SOURCE=1 always takes the sources.
 */
async function entryPoint() {
  const source = '../src/cli/main.ts';
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('..', import.meta.url));
  let built;
  try {
    built = JSON.parse(readFileSync(`${root}/dist/build.json`, 'utf8'));
  } catch {
    built = undefined;
  }
  let program;
  try {
    const { sourceDigest, sourceFingerprint } = await import('../scripts/source-digest.js');
    // Files not touched since the build: the recorded digest is theirs (no need to read them all).
    program = built !== undefined && typeof built.digest === 'string' && built.fingerprint === sourceFingerprint(root) ? built.digest : sourceDigest(root);
  } catch {
    return { entry: source, program: undefined };
  }
  const fresh = built !== undefined && built.digest === program && process.env.DESIREDSTATE_FROM_SOURCE !== '1';
  return { entry: fresh ? '../dist/main.js' : source, program };
}
