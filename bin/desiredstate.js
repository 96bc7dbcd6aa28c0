#!/usr/bin/env node
// The project's sources are TypeScript run directly by Node 24's type
// stripping (no build step); the project pins Node 24 as a dependency, so npm
// scripts and `npx desiredstate` find it first on the PATH.
const [major] = process.versions.node.split('.').map(Number);
if (major === undefined || major < 24) {
  console.error(`desiredstate needs Node.js 24 or newer (this is ${process.version}); run it through npm (npm start, npx desiredstate) so the pinned runtime is used`);
  process.exit(70);
}
await import('../src/cli/main.ts');
