// Lint is part of `npm test`. Besides the usual checks it holds the
// architecture: imports point one way, backends -> infra -> runtime.
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const srcDir = resolve(import.meta.dirname, 'src');

/**
 * The layer of a path under src/: runtime, infra, cli, server, `backends` (the files directly in
 * src/backends/, the list of built-in backends) or `backend:NAME` (src/backends/NAME/ and below);
 * undefined outside src/.
 */
function layerOf(path) {
  const rel = relative(srcDir, path);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined;
  const [top, second, ...rest] = rel.split(sep);
  if (top !== 'backends') return top;
  if (second === undefined) return 'backends';
  const folder = rest.length > 0 || (existsSync(path) && statSync(path).isDirectory());
  return folder ? `backend:${second}` : 'backends';
}

/** Why a file of layer `from` may not import one of layer `to`, or undefined when it may. */
function forbidden(from, to) {
  if (from === undefined || to === undefined || from === to) return undefined;
  const backend = to === 'backends' || to.startsWith('backend:');
  switch (from.startsWith('backend:') ? 'backend' : from) {
    case 'runtime':
      return ['infra', 'cli', 'server'].includes(to) || backend ? 'src/runtime is generic: it must not import infra, backends, cli or server.' : undefined;
    case 'infra':
      return ['cli', 'server'].includes(to) || backend ? 'src/infra must not know which backends exist (backends -> infra -> runtime).' : undefined;
    case 'backend':
      return ['cli', 'server'].includes(to) || backend ? 'A backend depends on src/infra (and src/runtime) only, never on another backend or the CLI.' : undefined;
    case 'backends':
      return ['cli', 'server'].includes(to) ? 'src/backends/index.ts lists backends; it must not import the CLI.' : undefined;
    default:
      return undefined;
  }
}

/**
 * The layering, on resolved paths: every relative import (static, dynamic, re-export, `import()`
 * type, require) is resolved against the importing file and both files placed in their layer, so
 * that no spelling of a path (`../../local/x.ts` from a backend's subfolder) slips through.
 */
const layersRule = {
  meta: { type: 'problem', schema: [], messages: { layer: '{{why}} ({{spec}} is in {{to}})' } },
  create(context) {
    const file = context.physicalFilename;
    const from = layerOf(file);
    if (from === undefined) return {};
    const check = (node, spec) => {
      if (typeof spec !== 'string' || !(spec.startsWith('.') || spec.startsWith('/'))) return;
      const target = resolve(dirname(file), spec);
      const to = layerOf(target);
      const why = forbidden(from, to);
      if (why !== undefined) context.report({ node, messageId: 'layer', data: { why, spec, to: relative(import.meta.dirname, target) } });
    };
    const literal = (n) => (n?.type === 'Literal' ? n.value : n?.type === 'TemplateLiteral' && n.expressions.length === 0 ? n.quasis[0].value.cooked : undefined);
    return {
      ImportDeclaration: (n) => check(n.source, n.source.value),
      ExportNamedDeclaration: (n) => n.source && check(n.source, n.source.value),
      ExportAllDeclaration: (n) => check(n.source, n.source.value),
      ImportExpression: (n) => check(n.source, literal(n.source)),
      TSImportType: (n) => check(n.argument, literal(n.argument?.literal ?? n.argument)),
      CallExpression: (n) => n.callee.type === 'Identifier' && n.callee.name === 'require' && check(n.arguments[0], literal(n.arguments[0])),
    };
  },
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', 'bench/.out/**', '.desiredstate/**', '.scratch/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': [
        'error',
        { considerDefaultExhaustiveForUnions: true, requireDefaultForNonUnion: false },
      ],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/only-throw-error': 'error',
      'no-console': 'off',
    },
  },
  {
    // runtime -> nothing of ours above it; infra -> runtime; a backend -> infra and runtime, never
    // another backend; none of them -> cli or server (layersRule above).
    files: ['src/**/*.ts'],
    plugins: { desiredstate: { rules: { layers: layersRule } } },
    rules: { 'desiredstate/layers': 'error' },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
