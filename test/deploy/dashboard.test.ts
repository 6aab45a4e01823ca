import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { startGatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/*
 * deploy/observability/: the Grafana dashboard may only query metrics the gateway exports. The
 * list of those is what a running `infergate serve` prints on its admin port's /metrics (every
 * registered metric has its `# TYPE` line there, with or without samples), not a copy kept here:
 * renaming a metric in the code fails this test until the dashboard follows. The monitors select
 * the ports the Deployments name.
 */

const OBSERVABILITY = fileURLToPath(new URL('../../../deploy/observability/', import.meta.url));
const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));

type Json = Record<string, unknown>;

/** Names a PromQL query may use for each exported metric: a histogram's series, or the name itself. */
function queryableNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name = '', type] = m;
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    else if (type === 'summary') for (const suffix of ['', '_sum', '_count']) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

let scraped: Promise<string> | undefined;

/** `/metrics` of a real `infergate serve` (one model server that need not exist), once per file. */
function scrapeGateway(): Promise<string> {
  scraped ??= (async () => {
    const gateway = await startGatewayProcess(['--backend', `http://127.0.0.1:${await freePort()}`, '--port', String(await freePort()), '--log-level', 'warn']);
    try {
      return await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    } finally {
      await gateway.stop();
    }
  })();
  return scraped;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions (followed by
 * `(`), keywords, label names (in `{…}` or in by/without/on/ignoring/group lists), strings,
 * ranges or Grafana variables (`$pool`, `${datasource}`, `$__rate_interval`).
 */
function metricNames(expr: string): string[] {
  let e = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  e = e.replace(/\$\{[^}]*\}|\$\w+/g, ' ');
  e = e.replace(/\{[^}]*\}/g, ' ');
  e = e.replace(/\[[^\]]*\]/g, ' ');
  e = e.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const out: string[] = [];
  for (const m of e.matchAll(/(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    if (e.slice(m.index + m[0].length).trimStart().startsWith('(')) continue;
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    out.push(m[0]);
  }
  return out;
}

/** Every query of the dashboard: each panel target's `expr` (rows included) and each template variable's. */
function queriesOf(dashboard: Json): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  const walk = (panels: unknown): void => {
    for (const p of (panels ?? []) as Json[]) {
      for (const t of (p['targets'] ?? []) as Json[]) if (typeof t['expr'] === 'string') out.push({ where: `panel "${String(p['title'])}" ${String(t['refId'])}`, expr: t['expr'] });
      walk(p['panels']);
    }
  };
  walk(dashboard['panels']);
  for (const v of ((dashboard['templating'] as Json | undefined)?.['list'] ?? []) as Json[]) {
    if (v['type'] !== 'query') continue;
    const q = v['query'];
    const text = typeof q === 'string' ? q : String((q as Json)['query']);
    // label_values(selector, label): the label is not a metric.
    out.push({ where: `variable $${String(v['name'])}`, expr: text.replace(/^label_values\((.*),\s*[A-Za-z_]\w*\s*\)$/s, '$1') });
  }
  return out;
}

/** Queries naming a metric outside `known`, as `where: name`. */
function unknownMetrics(dashboard: Json, known: ReadonlySet<string>): string[] {
  return queriesOf(dashboard).flatMap(({ where, expr }) => metricNames(expr).filter((n) => !known.has(n)).map((n) => `${where}: ${n}`));
}

test('every query of the Grafana dashboard names only metrics a running gateway exports', async () => {
  const exposition = await scrapeGateway();
  const known = queryableNames(exposition);
  assert.ok(known.has('infergate_requests_total') && known.has('infergate_time_to_first_token_seconds_bucket'), `the exposition lists the gateway's metrics:\n${exposition.slice(0, 400)}`);

  const dashboard = JSON.parse(await readFile(`${OBSERVABILITY}grafana-dashboard.json`, 'utf8')) as Json;
  const queries = queriesOf(dashboard);
  assert.ok(queries.length >= 20, `found ${queries.length} queries`);
  for (const { where, expr } of queries) assert.ok(metricNames(expr).length > 0, `${where}: names no metric: ${expr}`);
  assert.deepEqual(unknownMetrics(dashboard, known), [], 'queries naming metrics the gateway does not export');

  // The check bites: a panel naming an unknown metric (or a histogram without its suffix) fails it.
  const broken = { panels: [{ title: 'typo', targets: [{ refId: 'A', expr: 'sum by (pool) (rate(infergate_request_total{pool=~"$pool"}[$__rate_interval])) / sum(infergate_time_to_first_token_seconds)' }] }] };
  assert.deepEqual(unknownMetrics(broken, known), ['panel "typo" A: infergate_request_total', 'panel "typo" A: infergate_time_to_first_token_seconds']);

  // What seed 002's readers look for, and what the issue asks the dashboard to show.
  const used = new Set(queries.flatMap(({ expr }) => metricNames(expr)));
  for (const needed of [
    'infergate_time_to_first_token_seconds_bucket', // TTFT
    'infergate_inter_token_latency_seconds_bucket', // ITL
    'infergate_tokens_total', // tokens/s
    'infergate_endpoint_waiting_requests', // queue per endpoint
    'infergate_endpoint_kv_cache_usage', // KV-cache use per endpoint
    'infergate_prefix_index_hit_ratio', // prefix hit rate
    'infergate_requests_total', // canary split (target_model, pool) and refusals (code)
    'infergate_queue_size',
  ]) {
    assert.ok(used.has(needed), `the dashboard shows ${needed}`);
  }
});

test('the ServiceMonitor and PodMonitor select the gateways and scrape the ports their pods name', async () => {
  const docs = async (path: string): Promise<Json[]> => parseAllDocuments(await readFile(path, 'utf8')).map((d) => d.toJS() as Json);
  const [serviceMonitor] = await docs(`${OBSERVABILITY}servicemonitor.yaml`);
  const [podMonitor] = await docs(`${OBSERVABILITY}podmonitor.yaml`);
  assert.equal(serviceMonitor?.['apiVersion'], 'monitoring.coreos.com/v1');
  assert.equal(podMonitor?.['apiVersion'], 'monitoring.coreos.com/v1');
  const matches = (selector: unknown, labels: unknown): boolean =>
    Object.entries(((selector as Json)['matchLabels'] ?? {}) as Record<string, string>).every(([k, v]) => (labels as Record<string, string> | undefined)?.[k] === v);
  const scraped = (monitor: Json | undefined, key: string): string[] => (((monitor?.['spec'] as Json)[key] ?? []) as Json[]).map((e) => String(e['port']));

  for (const [dir, service] of [['standalone', 'infergate-admin'], ['epp', 'inference-gateway-ext-proc']] as const) {
    const deployment = (await docs(`${DEPLOY}${dir}/deployment.yaml`))[0] as Json;
    const template = (deployment['spec'] as Json)['template'] as Json;
    const container = (((template['spec'] as Json)['containers'] as Json[])[0] ?? {}) as Json;
    const args = container['args'] as string[];
    const adminPort = Number(args[args.indexOf(dir === 'epp' ? '--metrics-port' : '--admin-port') + 1]);
    const portName = String(((container['ports'] as Json[]).find((p) => p['containerPort'] === adminPort) ?? {})['name']);
    assert.ok(matches((podMonitor?.['spec'] as Json)['selector'], (template['metadata'] as Json)['labels']), `the PodMonitor selects ${dir}'s pods`);
    assert.ok(scraped(podMonitor, 'podMetricsEndpoints').includes(portName), `the PodMonitor scrapes ${dir}'s ${portName}`);
    const svc = (await docs(`${DEPLOY}${dir}/service.yaml`)).find((d) => (d['metadata'] as Json)['name'] === service) as Json;
    assert.ok(matches((serviceMonitor?.['spec'] as Json)['selector'], (svc['metadata'] as Json)['labels']), `the ServiceMonitor selects Service ${service}`);
    const svcPort = ((svc['spec'] as Json)['ports'] as Json[]).find((p) => p['targetPort'] === portName);
    assert.ok(svcPort !== undefined && scraped(serviceMonitor, 'endpoints').includes(String(svcPort['name'])), `the ServiceMonitor scrapes ${service}'s admin port`);
  }
});

test('docs/metrics.md lists every metric a running gateway exports', async () => {
  const exposition = await scrapeGateway();
  const doc = await readFile(fileURLToPath(new URL('../../../docs/metrics.md', import.meta.url)), 'utf8');
  const exported = [...exposition.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? '');
  assert.ok(exported.length > 10);
  assert.deepEqual(exported.filter((name) => !doc.includes(`| \`${name}\` |`)), [], 'exported but missing from the table in docs/metrics.md');
});
