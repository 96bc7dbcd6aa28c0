import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { assertNever } from '../../runtime/index.ts';
import type { Diagnostic, Severity, SourceLocation } from '../../runtime/index.ts';
import type { Finding } from './finding.ts';
import type { CheckReport, RuleInfo } from './report.ts';

/**
 * The check report as SARIF 2.1.0, so that code-review tools show findings
 * inline on a pull request; and, when the goals do not compile, the compile
 * diagnostics in the same shape, so that the upload still gets a valid log
 * saying why. Only the parts of the format we fill are typed.
 */

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
export const SARIF_VERSION = '2.1.0';

export type SarifLevel = 'error' | 'warning' | 'note';

/** A policy rule (tags are its frameworks), or a compile-diagnostic code (kind `diagnostic`). */
type SarifRuleProperties =
  | { readonly kind: RuleInfo['kind']; readonly tags: readonly string[]; readonly policy: string }
  | { readonly kind: 'diagnostic'; readonly tags: readonly string[] };

export interface SarifRule {
  readonly id: string;
  readonly name?: string;
  readonly shortDescription: { readonly text: string };
  readonly fullDescription?: { readonly text: string };
  readonly properties: SarifRuleProperties;
}

/** No region when the location is a whole file or directory (line 0). */
interface SarifPhysicalLocation {
  readonly artifactLocation: { readonly uri: string };
  readonly region?: { readonly startLine: number; readonly startColumn: number };
}

/** What a policy finding adds to its result. */
interface SarifFindingProperties {
  readonly severity: string;
  readonly blocking: boolean;
  readonly policy: string;
  readonly node: string;
  readonly goal: string;
  readonly environment: string;
  readonly frameworks: readonly string[];
}

/** What a compile diagnostic adds to its result. */
interface SarifDiagnosticProperties {
  readonly severity: Severity;
}

export interface SarifResult {
  readonly ruleId: string;
  readonly ruleIndex: number;
  readonly level: SarifLevel;
  readonly message: { readonly text: string };
  readonly locations: readonly { readonly physicalLocation: SarifPhysicalLocation }[];
  readonly properties: SarifFindingProperties | SarifDiagnosticProperties;
}

export interface SarifLog {
  readonly $schema: string;
  readonly version: typeof SARIF_VERSION;
  readonly runs: readonly {
    readonly tool: { readonly driver: { readonly name: string; readonly informationUri?: string; readonly version?: string; readonly rules: readonly SarifRule[] } };
    readonly results: readonly SarifResult[];
    readonly columnKind: 'utf16CodeUnits';
  }[];
}

/** Blocking findings are errors; info findings are notes; the rest warnings. */
export function sarifLevel(f: Finding): SarifLevel {
  if (f.blocking) return 'error';
  return f.severity === 'info' ? 'note' : 'warning';
}

/**
 * Rule ids are unique inside a policy; two policies may reuse one, and
 * then both are qualified as `<policy>/<rule>`.
 */
function sarifRuleIds(rules: readonly Pick<RuleInfo, 'id' | 'policy'>[]): (policy: string, rule: string) => string {
  const policiesById = new Map<string, Set<string>>();
  for (const r of rules) {
    const set = policiesById.get(r.id) ?? new Set<string>();
    set.add(r.policy);
    policiesById.set(r.id, set);
  }
  return (policy, rule) => ((policiesById.get(rule)?.size ?? 0) > 1 ? `${policy}/${rule}` : rule);
}

/** Builds the SARIF log of a check report. URIs are the goal files' paths as shown (relative to the working directory). */
export function toSarif(report: CheckReport, options: { toolVersion?: string } = {}): SarifLog {
  // Findings may name rules the catalogue lacks (a report built from findings alone).
  const catalogue = new Map<string, RuleInfo>();
  for (const r of report.rules) catalogue.set(`${r.policy}\u0000${r.id}`, r);
  for (const f of report.findings) {
    const key = `${f.policy}\u0000${f.rule}`;
    if (!catalogue.has(key)) catalogue.set(key, { id: f.rule, policy: f.policy, kind: f.kind === 'rule-error' ? 'rule' : f.kind, description: f.description, frameworks: f.frameworks });
  }
  const ruleId = sarifRuleIds([...catalogue.values()]);
  const rules: SarifRule[] = [];
  const index = new Map<string, number>();
  for (const r of catalogue.values()) {
    const id = ruleId(r.policy, r.id);
    if (index.has(id)) continue;
    index.set(id, rules.length);
    rules.push({
      id,
      shortDescription: { text: r.description },
      properties: { tags: [...r.frameworks], policy: r.policy, kind: r.kind },
    });
  }
  const results: SarifResult[] = report.findings.map((f) => {
    const id = ruleId(f.policy, f.rule);
    return {
      ruleId: id,
      ruleIndex: index.get(id)!,
      level: sarifLevel(f),
      message: { text: `[${f.severity}] ${f.node}: ${f.message}` },
      // A finding always points into a goal file: clamp rather than drop the region.
      locations: [{ physicalLocation: physicalLocation({ file: f.location.file, line: Math.max(1, f.location.line), col: Math.max(1, f.location.col) }) }],
      properties: {
        severity: f.severity,
        blocking: f.blocking,
        policy: f.policy,
        node: f.node,
        goal: f.goal,
        environment: f.environment,
        frameworks: [...f.frameworks],
      },
    };
  });
  // The compile's other warnings beside the findings, as when the goals do not compile.
  results.push(...diagnosticResults(report.diagnostics, rules));
  return sarifLog(rules, results, options);
}

/** Compile diagnostics' severities as SARIF levels. */
function diagnosticLevel(severity: Severity): SarifLevel {
  switch (severity) {
    case 'error':
      return 'error';
    case 'warning':
      return 'warning';
    case 'info':
      return 'note';
    default:
      return assertNever(severity, 'diagnostic severity');
  }
}

/**
 * Builds the SARIF log of goals that do not compile: one result per
 * diagnostic, one rule per diagnostic code.
 */
export function diagnosticsToSarif(diagnostics: readonly Diagnostic[], options: { toolVersion?: string } = {}): SarifLog {
  const rules: SarifRule[] = [];
  return sarifLog(rules, diagnosticResults(diagnostics, rules), options);
}

/**
 * One result per diagnostic, its rule the diagnostic's code, added to `rules` the first time. A
 * diagnostic on line 0 names a whole file or directory, so its location has no region.
 */
function diagnosticResults(diagnostics: readonly Diagnostic[], rules: SarifRule[]): SarifResult[] {
  const index = new Map<string, number>();
  return diagnostics.map((d) => {
    let ruleIndex = index.get(d.code);
    if (ruleIndex === undefined) {
      ruleIndex = rules.length;
      index.set(d.code, ruleIndex);
      rules.push({ id: d.code, shortDescription: { text: `Goal compilation diagnostic ${d.code}.` }, properties: { kind: 'diagnostic', tags: [] } });
    }
    return {
      ruleId: d.code,
      ruleIndex,
      level: diagnosticLevel(d.severity),
      message: { text: d.message },
      locations: [{ physicalLocation: physicalLocation(d) }],
      properties: { severity: d.severity },
    };
  });
}

function sarifLog(rules: readonly SarifRule[], results: readonly SarifResult[], options: { toolVersion?: string }): SarifLog {
  const driver = { name: 'desiredstate', ...(options.toolVersion === undefined ? {} : { version: options.toolVersion }), rules };
  return { $schema: SARIF_SCHEMA, version: SARIF_VERSION, runs: [{ tool: { driver }, results, columnKind: 'utf16CodeUnits' }] };
}

function physicalLocation(loc: SourceLocation): SarifPhysicalLocation {
  const artifactLocation = { uri: toUri(loc.file) };
  if (loc.line <= 0) return { artifactLocation };
  return { artifactLocation, region: { startLine: loc.line, startColumn: Math.max(1, loc.col) } };
}

/**
 * A relative URI reference: forward slashes, each segment percent-encoded.
 * A path outside the working directory is shown absolute; as a relative
 * reference it would begin with "/", which SARIF forbids (SARIF1004) and
 * code scanning cannot place: it becomes a file:// URI.
 */
function toUri(file: string): string {
  if (isAbsolute(file)) return pathToFileURL(file).href;
  return file
    .replace(/\\/g, '/')
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/** The SARIF log as text. */
export function formatSarif(report: CheckReport, options: { toolVersion?: string } = {}): string {
  return `${JSON.stringify(toSarif(report, options), null, 2)}\n`;
}

/** The SARIF log of compile diagnostics as text. */
export function formatSarifDiagnostics(diagnostics: readonly Diagnostic[], options: { toolVersion?: string } = {}): string {
  return `${JSON.stringify(diagnosticsToSarif(diagnostics, options), null, 2)}\n`;
}
