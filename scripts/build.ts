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
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type * as Rolldown from 'rolldown';
import { bootId } from '../src/runtime/process-alive.ts';
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

/**
 * pino() collects the call sites of its caller on every call (lib/caller.js, and lib/transport.js
 * for pino.transport()), to resolve the relative paths of a transport's targets. We give it no
 * transport, so nothing reads them, yet collecting them makes V8 compute the line ends of every
 * script on the stack: in the snapshot, the whole 1.2 MB bundle, ~3 ms of each one-shot command
 * (bench/README.md). Both bundles take an empty list instead; the snapshot build checks that no
 * call site collection is left.
 */
const pinoWithoutCallers: Rolldown.Plugin = {
  name: 'pino-without-callers',
  resolveId: (id, importer) =>
    /^\.\/(lib\/)?caller$/.test(id) && importer !== undefined && /[\\/]node_modules[\\/]pino[\\/]/.test(importer) ? '\0pino-callers' : null,
  load: (id) => (id === '\0pino-callers' ? 'module.exports = function getCallers() { return []; };' : null),
};

const digest = sourceDigest(root);
rmSync(out, { recursive: true, force: true });
await rolldown.build({
  input: join(root, 'src/cli/main.ts'),
  platform: 'node',
  // A native addon: the package finds and loads it from its own directory (its lib/binding.js).
  external: ['better-sqlite3'],
  logLevel: 'warn',
  plugins: [pinoWithoutCallers],
  output: { dir: out, format: 'esm', entryFileNames: 'main.js', chunkFileNames: '[name]-[hash].js', sourcemap: true },
});
mkdirSync(out, { recursive: true });
const fingerprint = sourceFingerprint(root);
writeFileSync(join(out, 'build.json'), `${JSON.stringify({ digest, fingerprint, builtAt: new Date().toISOString() }, null, 2)}\n`);
console.log(`desiredstate build: dist/ from sources ${digest.slice(0, 12)}`);

/*
 * The start-up snapshot (src/cli/snapshot.ts): the same program as one
 * CommonJS file, loaded by this very Node binary with --build-snapshot into
 * dist/desiredstate.blob, which bin/desiredstate starts Node from. Where any
 * step fails, there is no snapshot and the launcher starts from dist/ as above.
 */
const SNAPSHOT = join(out, 'desiredstate.blob');
const SNAPSHOT_NODE = join(out, 'node');
try {
  await buildSnapshot();
  console.log(`desiredstate build: start-up snapshot ${SNAPSHOT} (Node ${process.version})`);
} catch (err) {
  rmSync(SNAPSHOT, { force: true });
  rmSync(SNAPSHOT_NODE, { force: true });
  console.warn(`desiredstate build: no start-up snapshot (${err instanceof Error ? err.message : String(err)}); bin/desiredstate starts without it`);
}

async function buildSnapshot(): Promise<void> {
  // What a snapshot cannot hold is loaded on first use instead: a native addon, and the modules of
  // Node whose bindings it does not serialize (node:http's parser). Each stands in for what we import.
  // better-sqlite3's JavaScript is in the snapshot like any other module (its lib/database.js takes
  // the function that loads the addon, and calls it at the first open); only the addon itself, found
  // by its own lib/binding.js, is loaded then. Absolute paths: its package exports neither file.
  const sqliteLib = dirname(createRequire(join(root, 'package.json')).resolve('better-sqlite3'));
  const onFirstUse: Record<string, string> = {
    'better-sqlite3': `import { createRequire } from 'node:module';
import createDatabase from ${JSON.stringify(join(sqliteLib, 'database.js'))};
const load = createRequire(${JSON.stringify(join(sqliteLib, 'binding.js'))});
export default createDatabase((nativeBinding) => load(${JSON.stringify(join(sqliteLib, 'binding.js'))}).getBinding(nativeBinding), true);`,
    'node:http': `export function createServer(...args) { return process.getBuiltinModule('node:http').createServer(...args); }
export function request(...args) { return process.getBuiltinModule('node:http').request(...args); }`,
  };
  const entry = join(out, 'snapshot.cjs');
  await rolldown.build({
    input: join(root, 'src/cli/snapshot.ts'),
    platform: 'node',
    logLevel: 'warn',
    plugins: [
      pinoWithoutCallers,
      {
        name: 'snapshot-on-first-use',
        resolveId: (id, importer) => (id in onFirstUse && importer?.startsWith('\0') !== true ? `\0on-first-use:${id}` : null),
        load: (id) => (id.startsWith('\0on-first-use:') ? onFirstUse[id.slice('\0on-first-use:'.length)] : null),
      },
    ],
    output: {
      file: entry,
      format: 'cjs',
      codeSplitting: false,
      charset: 'ascii',
      comments: false,
      intro: `const DESIREDSTATE_BUILD = ${JSON.stringify({ root, digest, fingerprint })};`,
    },
  });
  // A snapshot has no module loader for import(): every module it runs must be in the bundle.
  const bundled = readFileSync(entry, 'utf8');
  const dynamicImport = /\bimport\s*\(\s*["'`]([^"'`]*)/.exec(bundled);
  if (dynamicImport !== null) throw new Error(`the snapshot bundle imports ${dynamicImport[1]} at run time (import() does not work in a snapshot; import it statically)`);
  if (bundled.includes('getCallSite')) throw new Error("the snapshot bundle collects call sites (pino's lib/caller.js was not replaced: see pinoWithoutCallers)");
  const env = { ...process.env, NODE_OPTIONS: '' };
  const built = spawnSync(process.execPath, ['--snapshot-blob', SNAPSHOT, '--build-snapshot', entry], { cwd: root, env, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`node --build-snapshot exited ${built.status ?? built.signal}: ${built.stderr.trim().split('\n').slice(-3).join(' ')}`);
  // Two processes from the snapshot must not share what each should draw afresh (random ids, the boot).
  const selfTest = (): { uuid: string; boot: string | null; pid: number } => {
    const r = spawnSync(process.execPath, ['--snapshot-blob', SNAPSHOT, '--', root, '--snapshot-self-test'], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the snapshot's self-test exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as { uuid: string; boot: string | null; pid: number };
  };
  const [a, b] = [selfTest(), selfTest()];
  if (a.uuid === b.uuid) throw new Error('two processes started from the snapshot drew the same random id');
  const boot = bootId() ?? null;
  if (a.boot !== boot || b.boot !== boot) throw new Error("the snapshot holds another boot's id");
  // The binary it was built by, for bin/desiredstate to check its Node against (`-ef`: same file): a
  // snapshot only loads into the Node that made it, and a reinstalled one is a new file.
  linkSync(realpathSync(process.execPath), SNAPSHOT_NODE);
}

