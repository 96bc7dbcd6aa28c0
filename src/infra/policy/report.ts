import { assertNever, formatDiagnostic } from '../../runtime/index.ts';
import type { Diagnostic, GoalInfo, NodeId, SourceLocation } from '../../runtime/index.ts';
import type { Finding } from './finding.ts';
import { compareLevels, FRAMEWORKS, LEVELS } from './schema.ts';
import type { Framework, Level } from './schema.ts';
import { formatSarif } from './sarif.ts';

/** pass: no finding above info; warn: findings, none blocking; block: at least one finding at or above blockAt. */
export type Verdict = 'pass' | 'warn' | 'block';

/** A node the policy engine judged. */
export interface EvaluatedNode {
  readonly id: NodeId;
  readonly type: string;
  readonly goal: string;
  readonly environment: string;
  readonly location: SourceLocation;
}

/** A rule in force, for SARIF's rule catalogue. */
export interface RuleInfo {
  readonly id: string;
  readonly policy: string;
  readonly kind: 'naming' | 'required-label' | 'rule';
  readonly description: string;
  readonly frameworks: readonly Framework[];
}

export interface NodeReport {
  readonly id: NodeId;
  readonly type: string;
  readonly verdict: Verdict;
  readonly location: SourceLocation;
  readonly findings: readonly Finding[];
}

export interface GoalReport {
  readonly name: string;
  readonly environment: string;
  readonly file: string;
  readonly verdict: Verdict;
  readonly counts: Readonly<Record<Verdict, number>>;
  readonly nodes: readonly NodeReport[];
}

/** Findings scoped to one framework; `unscoped` holds rules that name none. */
export interface FrameworkReport {
  readonly framework: Framework | 'unscoped';
  readonly verdict: Verdict;
  readonly nodes: number;
  readonly bySeverity: Readonly<Record<Level, number>>;
  readonly findings: readonly Finding[];
}

/** What `desiredstate check` prints, in every format. */
export interface CheckReport {
  readonly verdict: Verdict;
  readonly summary: {
    readonly goals: number;
    readonly nodes: number;
    readonly verdicts: Readonly<Record<Verdict, number>>;
    readonly findings: number;
    readonly bySeverity: Readonly<Record<Level, number>>;
  };
  readonly goals: readonly GoalReport[];
  readonly frameworks: readonly FrameworkReport[];
  readonly rules: readonly RuleInfo[];
  readonly findings: readonly Finding[];
  /** The compile's diagnostics that are no finding (an environment a rule names that no goal has), as validate shows them. */
  readonly diagnostics: readonly Diagnostic[];
}

/** The verdict a set of findings gives. */
export function verdictOf(findings: readonly Finding[]): Verdict {
  if (findings.some((f) => f.blocking)) return 'block';
  if (findings.some((f) => f.severity !== 'info')) return 'warn';
  return 'pass';
}

function zeroLevels(): Record<Level, number> {
  return { info: 0, low: 0, medium: 0, high: 0, critical: 0 };
}

/**
 * Builds the check report: a verdict per node and per goal (nodes and goals
 * without findings pass), and the findings grouped by framework.
 */
export function checkReport(
  findings: readonly Finding[],
  scope: {
    readonly nodes: readonly EvaluatedNode[];
    readonly goals: readonly Pick<GoalInfo, 'name' | 'environment' | 'file'>[];
    readonly rules?: readonly RuleInfo[];
    readonly diagnostics?: readonly Diagnostic[];
  },
): CheckReport {
  const byNode = new Map<NodeId, Finding[]>();
  for (const f of findings) {
    const list = byNode.get(f.node);
    if (list === undefined) byNode.set(f.node, [f]);
    else list.push(f);
  }
  const nodes = new Map<NodeId, EvaluatedNode>(scope.nodes.map((n) => [n.id, n]));
  // A finding on a node the caller did not list still counts.
  for (const f of findings) {
    if (!nodes.has(f.node)) nodes.set(f.node, { id: f.node, type: f.type, goal: f.goal, environment: f.environment, location: f.location });
  }
  const goalNodes = new Map<string, NodeReport[]>();
  const verdicts: Record<Verdict, number> = { pass: 0, warn: 0, block: 0 };
  for (const n of nodes.values()) {
    const nodeFindings = byNode.get(n.id) ?? [];
    const report: NodeReport = { id: n.id, type: n.type, verdict: verdictOf(nodeFindings), location: n.location, findings: nodeFindings };
    verdicts[report.verdict] += 1;
    const list = goalNodes.get(n.goal);
    if (list === undefined) goalNodes.set(n.goal, [report]);
    else list.push(report);
  }
  const goals: GoalReport[] = [];
  const known = new Set<string>();
  const goalReport = (name: string, environment: string, file: string): GoalReport => {
    const list = goalNodes.get(name) ?? [];
    const counts: Record<Verdict, number> = { pass: 0, warn: 0, block: 0 };
    for (const n of list) counts[n.verdict] += 1;
    const verdict: Verdict = counts.block > 0 ? 'block' : counts.warn > 0 ? 'warn' : 'pass';
    return { name, environment, file, verdict, counts, nodes: list };
  };
  for (const g of scope.goals) {
    known.add(g.name);
    goals.push(goalReport(g.name, g.environment, g.file));
  }
  for (const n of nodes.values()) {
    if (known.has(n.goal)) continue;
    known.add(n.goal);
    goals.push(goalReport(n.goal, n.environment, n.location.file));
  }

  const frameworks: FrameworkReport[] = [];
  for (const fw of [...FRAMEWORKS, 'unscoped'] as const) {
    const scoped = findings.filter((f) => (fw === 'unscoped' ? f.frameworks.length === 0 : f.frameworks.includes(fw)));
    if (scoped.length === 0) continue;
    const bySeverity = zeroLevels();
    for (const f of scoped) bySeverity[f.severity] += 1;
    frameworks.push({ framework: fw, verdict: verdictOf(scoped), nodes: new Set(scoped.map((f) => f.node)).size, bySeverity, findings: scoped });
  }
  const bySeverity = zeroLevels();
  for (const f of findings) bySeverity[f.severity] += 1;
  return {
    verdict: verdictOf(findings),
    summary: { goals: goals.length, nodes: nodes.size, verdicts, findings: findings.length, bySeverity },
    goals,
    frameworks,
    rules: scope.rules ?? rulesFromFindings(findings),
    findings,
    diagnostics: scope.diagnostics ?? [],
  };
}

function rulesFromFindings(findings: readonly Finding[]): RuleInfo[] {
  const seen = new Map<string, RuleInfo>();
  for (const f of findings) {
    const key = `${f.policy}\u0000${f.rule}`;
    if (seen.has(key)) continue;
    const kind = f.kind === 'rule-error' ? 'rule' : f.kind;
    seen.set(key, { id: f.rule, policy: f.policy, kind, description: f.description, frameworks: f.frameworks });
  }
  return [...seen.values()];
}

/** Output formats of `desiredstate check`. */
export type CheckFormat = 'text' | 'json' | 'sarif';
export const CHECK_FORMATS: readonly CheckFormat[] = ['text', 'json', 'sarif'];

/** Renders the report in one of the formats of `check --format`. */
export function formatCheck(report: CheckReport, format: CheckFormat): string {
  switch (format) {
    case 'text':
      return formatCheckText(report);
    case 'json':
      return formatCheckJson(report);
    case 'sarif':
      return formatSarif(report);
    default:
      return assertNever(format, 'check format');
  }
}

/** The report as JSON (stable field names; the same data as the text). */
export function formatCheckJson(report: CheckReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

const VERDICT_TAG: Readonly<Record<Verdict, string>> = { pass: 'PASS', warn: 'WARN', block: 'BLOCK' };

function at(loc: SourceLocation): string {
  return `${loc.file}:${loc.line}:${loc.col}`;
}

function severityCounts(counts: Readonly<Record<Level, number>>): string {
  return [...LEVELS]
    .reverse()
    .filter((l) => counts[l] > 0)
    .map((l) => `${counts[l]} ${l}`)
    .join(', ');
}

/** `1 node`, `2 nodes`: a count and its noun, in the plural unless it is one. */
function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * Human text: the compile's other diagnostics, as validate prints them; a
 * verdict per goal, then per node with findings (nodes that pass are
 * counted, not listed), each finding tagged with its severity; then the
 * findings grouped by framework.
 */
export function formatCheckText(report: CheckReport): string {
  const lines: string[] = report.diagnostics.map(formatDiagnostic);
  const s = report.summary;
  lines.push(
    `policy check: ${VERDICT_TAG[report.verdict]} (${counted(s.goals, 'goal')}, ${counted(s.nodes, 'node')}: ${s.verdicts.block} block, ${s.verdicts.warn} warn, ${s.verdicts.pass} pass; ${counted(s.findings, 'finding')})`,
  );
  for (const g of report.goals) {
    lines.push('');
    lines.push(`goal ${g.name} (${g.environment}) ${g.file}: ${VERDICT_TAG[g.verdict]}`);
    for (const n of g.nodes) {
      if (n.findings.length === 0) continue;
      lines.push(`  ${VERDICT_TAG[n.verdict]} ${n.id} (${n.type}) ${at(n.location)}`);
      const sorted = [...n.findings].sort((a, b) => compareLevels(b.severity, a.severity));
      for (const f of sorted) {
        const scope = f.frameworks.length === 0 ? '' : ` [${f.frameworks.join(', ')}]`;
        lines.push(`    ${f.severity.toUpperCase()}${f.blocking ? ' (blocks)' : ''} ${f.rule}: ${f.message} (policy ${f.policy}; ${at(f.location)})${scope}`);
      }
    }
    if (g.counts.pass > 0) lines.push(`  ${counted(g.counts.pass, 'node')} pass`);
  }
  if (report.frameworks.length > 0) {
    lines.push('');
    lines.push('by framework:');
    for (const fw of report.frameworks) {
      lines.push(`  ${fw.framework}: ${VERDICT_TAG[fw.verdict]} (${counted(fw.findings.length, 'finding')} on ${counted(fw.nodes, 'node')}: ${severityCounts(fw.bySeverity)})`);
      const rules = new Map<string, number>();
      for (const f of fw.findings) rules.set(f.rule, (rules.get(f.rule) ?? 0) + 1);
      for (const [rule, count] of rules) lines.push(`    ${rule}: ${count}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
