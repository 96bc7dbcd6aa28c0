#!/usr/bin/env node
// The sources are TypeScript run directly by Node 24's type stripping (no
// build step). The project pins Node 24 as a dependency, so npm scripts and
// `npx desiredstate` find it first on the PATH.
const [major] = process.versions.node.split('.').map(Number);
if (major === undefined || major < 24) {
  console.error(`desiredstate needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx desiredstate) so the pinned runtime is used`);
  process.exit(70);
}
// Cache compiled (and type-stripped) modules on disk: it more than halves
// the start-up of every command (NODE_DISABLE_COMPILE_CACHE=1 turns it off).
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2), {
  out: (text) => process.stdout.write(`${text}\n`),
  env: process.env,
  cwd: process.cwd(),
});
