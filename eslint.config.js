// Lint is part of `npm test`. Besides the usual checks it holds the
// architecture: imports point one way, backends -> infra -> runtime.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (message, patterns) => ({
  'no-restricted-imports': ['error', { patterns: patterns.map((p) => ({ ...p, message })) }],
});

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
    files: ['src/runtime/**/*.ts'],
    rules: layer('src/runtime is generic: it must not import infra, backends, cli or server.', [
      { group: ['**/infra', '**/infra/**', '**/backends/**', '**/cli/**', '**/server/**'] },
    ]),
  },
  {
    files: ['src/infra/**/*.ts'],
    rules: layer('src/infra must not know which backends exist (backends -> infra -> runtime).', [
      { group: ['**/backends/**', '**/cli/**', '**/server/**'] },
    ]),
  },
  {
    files: ['src/backends/*/**/*.ts'],
    rules: layer('A backend depends on src/infra (and src/runtime) only, never on another backend or the CLI.', [
      { group: ['**/cli/**', '**/server/**'] },
      { regex: '^\\.\\./(?!\\.\\.)[^/]+' },
    ]),
  },
  {
    // The list of built-in backends imports each backend folder and the infra SPI it satisfies.
    files: ['src/backends/index.ts'],
    rules: layer('src/backends/index.ts lists backends; it must not import the CLI.', [{ group: ['**/cli/**', '**/server/**'] }]),
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
