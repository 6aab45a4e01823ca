import { parseArgs } from 'node:util';
import { errorCount, fieldSource, formatProblemAt, loadFiles, summarize, type Pod, type Problem, type Resource, type Source } from '../api/index.js';
import { compileSnapshot } from '../config/compile.js';
import type { Snapshot } from '../config/snapshot.js';
import { selectorMatches } from '../endpoints/discovery.js';
import { didYouMean } from '../api/suggest.js';
import { pdPoolReports } from './validate-pd.js';

export const VALIDATE_HELP = `infergate validate: check resource files without serving them

Usage: infergate validate -f FILE_OR_DIR [-f ...]   (paths may also be given without -f)

Prints every problem as \`Kind/name: field.path: reason (file, line N)\` and exits 1 if any is an
error.
Valid input prints one summary line per resource and exits 0. References between resources
(routes to pools, models to pools, policies to gateways) are checked too; a dangling reference
is a warning, as in Kubernetes, and the affected traffic gets a clear error when served.
`;

export interface Output {
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
}

const PROCESS_OUTPUT: Output = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

/** Loads, validates and compiles `paths`; returns the exit code (1 when any problem is an error). */
export async function validatePaths(paths: readonly string[], out: Output): Promise<number> {
  const loaded = await loadFiles(paths);
  const errors = loaded.problems.filter((p) => p.severity === 'error');
  for (const p of errors) out.stderr(formatProblemAt(p));
  for (const p of loaded.problems) if (p.severity === 'warning') out.stderr(`warning: ${formatProblemAt(p)}`);
  if (errors.length > 0) {
    out.stderr(`${errorCount(errors)} error(s): serve would refuse this configuration`);
    return 1;
  }
  // Cross-resource checks (dangling references, unsupported filters) come from the compiler that
  // serve uses, so validate and serve can never disagree.
  const compiled = compileSnapshot(loaded.resources, 1);
  for (const w of compiled.warnings) out.stderr(`warning: ${formatProblemAt(w)}`);
  const pods = loaded.resources.filter((r): r is Pod => r.kind === 'Pod');
  // Every warning names the field's line, as errors do.
  const poolSource = poolSources(loaded.resources);
  for (const w of emptySelectors(compiled.snapshot, pods, poolSource)) out.stderr(`warning: ${formatProblemAt(w)}`);
  const pd = pdPoolReports(compiled.snapshot, pods, poolSource);
  for (const w of pd.flatMap((r) => r.warnings)) out.stderr(`warning: ${formatProblemAt(w)}`);
  for (const r of loaded.resources) out.stdout(summarize(r));
  for (const r of pd) out.stdout(r.line);
  for (const d of loaded.ignored) out.stdout(`ignored: ${d.kind}/${d.name} (${d.apiVersion}): not a kind the gateway reads`);
  out.stdout(`${loaded.resources.length} resource(s) valid${loaded.ignored.length > 0 ? `, ${loaded.ignored.length} ignored` : ''}`);
  return 0;
}

/**
 * Pools whose selector matches none of the Pods in the files: served as they are, every request
 * to them gets 503. Usually a typo in a label, so it is said before anything is served.
 */
/** Where each InferencePool of the files is (`namespace/name` → its source). */
function poolSources(resources: readonly Resource[]): (namespace: string, name: string) => Source | undefined {
  const byKey = new Map<string, Source>();
  for (const r of resources) if (r.kind === 'InferencePool') byKey.set(`${r.metadata.namespace}/${r.metadata.name}`, r.source);
  return (namespace, name) => byKey.get(`${namespace}/${name}`);
}

function emptySelectors(snapshot: Snapshot, pods: readonly Pod[], poolSource: (namespace: string, name: string) => Source | undefined): Problem[] {
  const out: Problem[] = [];
  for (const pool of snapshot.pools.values()) {
    if (pods.some((p) => p.metadata.namespace === pool.namespace && selectorMatches(pool.selector, p.metadata.labels))) continue;
    const selector = Object.entries(pool.selector).map(([k, v]) => `${k}=${v}`).join(', ');
    const source = poolSource(pool.namespace, pool.name);
    out.push({
      severity: 'warning',
      subject: `InferencePool/${pool.name}`,
      path: 'spec.selector',
      message: `matches no Pod in these files (${selector}${pods.length === 0 ? '; the files have no Pods' : ''})${selectorHint(pool.selector, pods)}: served as is, every request to it gets 503`,
      ...(source === undefined ? {} : { source: fieldSource(source, 'spec.selector') }),
    });
  }
  return out;
}

/** The first selector entry no Pod has, with the label key or value meant when one is close. */
function selectorHint(selector: Readonly<Record<string, string>>, pods: readonly Pod[]): string {
  for (const [key, value] of Object.entries(selector)) {
    const values = pods.flatMap((p) => (p.metadata.labels[key] === undefined ? [] : [p.metadata.labels[key] as string]));
    if (values.length === 0) {
      const near = didYouMean(key, new Set(pods.flatMap((p) => Object.keys(p.metadata.labels))));
      if (near !== '') return `; no Pod has label ${key}${near}`;
    } else if (!values.includes(value)) {
      const near = didYouMean(value, new Set(values));
      if (near !== '') return `; no Pod has ${key}=${value}${near}`;
    }
  }
  return '';
}

export async function runValidateCommand(argv: string[], out: Output = PROCESS_OUTPUT): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { file: { type: 'string', short: 'f', multiple: true }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
  });
  if (values.help === true) {
    process.stdout.write(VALIDATE_HELP);
    return 0;
  }
  const paths = [...(values.file ?? []), ...positionals];
  if (paths.length === 0) {
    out.stderr('validate needs at least one file or folder (-f PATH)');
    return 2;
  }
  return validatePaths(paths, out);
}
