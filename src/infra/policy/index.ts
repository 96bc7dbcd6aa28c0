/**
 * The policy engine: Policy documents (naming, required labels, CEL rules,
 * environment-aware defaults, built-in packs), the gate they put on nodes,
 * and the `check` report in text, JSON and SARIF.
 */
export { CelPolicyEngine } from './engine.ts';
export type { CelPolicyEngineOptions } from './engine.ts';
export type { Finding, FindingKind } from './finding.ts';
export { findingText } from './finding.ts';
export { BASELINE_PACK, BUILTIN_PACKS } from './baseline.ts';
export { CEL_VARIABLES, compileCel, defaultCelLimits, evaluationTimeouts, toCelValue } from './cel.ts';
export type { CelActivation, CelCompileResult, CelLimits, CelOutcome, CelProgram } from './cel.ts';
export { compileNamePattern, MAX_MATCHED_LENGTH } from './naming.ts';
export type { LinearRegex, NamePattern, PatternMatcher } from './naming.ts';
export { CHECK_FORMATS, checkReport, formatCheck, formatCheckJson, formatCheckText, verdictOf } from './report.ts';
export type { CheckFormat, CheckReport, EvaluatedNode, FrameworkReport, GoalReport, NodeReport, RuleInfo, Verdict } from './report.ts';
export { diagnosticsToSarif, formatSarif, formatSarifDiagnostics, SARIF_SCHEMA, SARIF_VERSION, sarifLevel, toSarif } from './sarif.ts';
export type { SarifLevel, SarifLog, SarifResult, SarifRule } from './sarif.ts';
export { compareLevels, FRAMEWORKS, LEVELS, levelFor, policyDocumentSchema, policySpecSchema } from './schema.ts';
export type { Framework, Level, LevelOrNone, PolicySpec, PolicySpecInput } from './schema.ts';
