import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parse } from 'yaml';

/*
 * The plain Envoy bootstraps in deploy/envoy/, checked without an Envoy binary: the rules Envoy's
 * ext_proc filter enforces when it loads its configuration
 * (envoyproxy/envoy source/extensions/filters/http/ext_proc/config.cc: FULL_DUPLEX_STREAMED needs
 * the matching trailer mode SEND and refuses failure_mode_allow), the wiring the Inference
 * Extension's endpoint picker protocol needs (an ORIGINAL_DST cluster on
 * x-gateway-destination-endpoint, envoy.lb metadata both ways), and references between the parts
 * (every cluster a route or filter names exists).
 */

const ENVOY = fileURLToPath(new URL('../../../deploy/envoy/', import.meta.url));

type Node = Record<string, unknown>;

function obj(v: unknown, what: string): Node {
  assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${what} is not an object`);
  return v as Node;
}

function list(v: unknown, what: string): Node[] {
  assert.ok(Array.isArray(v), `${what} is not a list`);
  return v.map((x, i) => obj(x, `${what}[${i}]`));
}

interface Bootstrap {
  readonly hcm: Node;
  readonly filters: Node[];
  readonly extProc: Node;
  readonly clusters: Map<string, Node>;
  readonly routes: Node[];
}

async function load(file: string): Promise<Bootstrap> {
  const root = obj(parse(await readFile(ENVOY + file, 'utf8')), file);
  const resources = obj(root['static_resources'], 'static_resources');
  const listener = list(resources['listeners'], 'listeners')[0];
  const hcmFilter = list(obj(list(listener?.['filter_chains'], 'filter_chains')[0], 'filter_chain')['filters'], 'filters')[0];
  assert.equal(hcmFilter?.['name'], 'envoy.filters.network.http_connection_manager');
  const hcm = obj(hcmFilter?.['typed_config'], 'hcm');
  assert.equal(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  const filters = list(hcm['http_filters'], 'http_filters');
  const extProc = obj(filters.find((f) => f['name'] === 'envoy.filters.http.ext_proc')?.['typed_config'], 'ext_proc typed_config');
  const clusters = new Map(list(resources['clusters'], 'clusters').map((c) => [String(c['name']), c]));
  const routes = list(obj(obj(hcm['route_config'], 'route_config'), 'route_config')['virtual_hosts'], 'virtual_hosts').flatMap((vh) => list(vh['routes'], 'routes'));
  return { hcm, filters, extProc, clusters, routes };
}

/** Envoy's own load-time checks of the ext_proc filter (config.cc `verifyProcessingModeConfig`). */
function assertEnvoyAccepts(extProc: Node, file: string): void {
  const mode = obj(extProc['processing_mode'], 'processing_mode');
  const fullDuplex = mode['request_body_mode'] === 'FULL_DUPLEX_STREAMED' || mode['response_body_mode'] === 'FULL_DUPLEX_STREAMED';
  if (mode['request_body_mode'] === 'FULL_DUPLEX_STREAMED') assert.equal(mode['request_trailer_mode'], 'SEND', `${file}: request_trailer_mode`);
  if (mode['response_body_mode'] === 'FULL_DUPLEX_STREAMED') assert.equal(mode['response_trailer_mode'], 'SEND', `${file}: response_trailer_mode`);
  if (fullDuplex) assert.notEqual(extProc['failure_mode_allow'], true, `${file}: failure_mode_allow with FULL_DUPLEX_STREAMED`);
  assert.ok('grpc_service' in extProc && !('http_service' in extProc), `${file}: exactly one of grpc_service, http_service`);
}

for (const file of ['envoy.yaml', 'envoy-failopen.yaml']) {
  test(`${file}: Envoy's ext_proc rules hold, and every part it names exists`, async () => {
    const b = await load(file);
    assertEnvoyAccepts(b.extProc, file);
    assert.equal(b.extProc['@type'], 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor');
    assert.equal(b.extProc['allow_mode_override'], true);
    assert.match(String(b.extProc['message_timeout']), /^[0-9]+s$/);
    // The router is last; the client's own destination / prefill headers are removed before ext_proc.
    assert.equal(b.filters.at(-1)?.['name'], 'envoy.filters.http.router');
    const names = b.filters.map((f) => f['name']);
    const strip = b.filters.find((f) => f['name'] === 'envoy.filters.http.header_mutation');
    assert.ok(names.indexOf('envoy.filters.http.header_mutation') < names.indexOf('envoy.filters.http.ext_proc'));
    const removed = list(obj(obj(strip?.['typed_config'], 'header_mutation')['mutations'], 'mutations')['request_mutations'], 'request_mutations').map((m) => m['remove']);
    assert.deepEqual(removed, ['x-gateway-destination-endpoint', 'x-prefiller-host-port']);

    // envoy.lb both ways: the EPP writes the destination there and reads the subset hint.
    const meta = obj(b.extProc['metadata_options'], 'metadata_options');
    assert.deepEqual(obj(meta['receiving_namespaces'], 'receiving')['untyped'], ['envoy.lb']);
    assert.ok((obj(meta['forwarding_namespaces'], 'forwarding')['untyped'] as string[]).includes('envoy.lb.subset_hint'));

    // Every cluster a route or the filter names exists.
    const grpc = obj(obj(b.extProc['grpc_service'], 'grpc_service')['envoy_grpc'], 'envoy_grpc');
    assert.ok(b.clusters.has(String(grpc['cluster_name'])), 'ext_proc cluster');
    for (const r of b.routes) assert.ok(b.clusters.has(String(obj(r['route'], 'route')['cluster'])), `route to ${JSON.stringify(r['route'])}`);

    // The model servers: ORIGINAL_DST on the EPP's header.
    const dst = b.clusters.get('original_destination_cluster');
    assert.equal(dst?.['type'], 'ORIGINAL_DST');
    assert.equal(dst?.['lb_policy'], 'CLUSTER_PROVIDED');
    assert.deepEqual(dst?.['original_dst_lb_config'], { use_http_header: true, http_header_name: 'x-gateway-destination-endpoint' });

    // The EPP: HTTP/2, TLS without verification, gRPC health of the ext_proc service on the
    // health port over the plain-text socket the health check selects.
    const epp = obj(b.clusters.get(String(grpc['cluster_name'])), 'ext_proc cluster');
    const http2 = obj(obj(obj(epp['typed_extension_protocol_options'], 'options')['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'], 'http options')['explicit_http_config'], 'explicit');
    assert.ok('http2_protocol_options' in http2);
    const tls = obj(obj(epp['transport_socket'], 'transport_socket')['typed_config'], 'tls');
    assert.equal(tls['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
    assert.deepEqual(tls['common_tls_context'], {});
    const hc = list(epp['health_checks'], 'health_checks')[0];
    assert.equal(obj(hc?.['grpc_health_check'], 'grpc_health_check')['service_name'], 'envoy.service.ext_proc.v3.ExternalProcessor');
    const criteria = obj(hc?.['transport_socket_match_criteria'], 'criteria');
    const match = list(epp['transport_socket_matches'], 'transport_socket_matches').find((m) => JSON.stringify(m['match']) === JSON.stringify(criteria));
    assert.equal(obj(match?.['transport_socket'], 'socket')['name'], 'envoy.transport_sockets.raw_buffer');
    const endpoint = obj(list(list(obj(epp['load_assignment'], 'load_assignment')['endpoints'], 'endpoints')[0]?.['lb_endpoints'], 'lb_endpoints')[0]?.['endpoint'], 'endpoint');
    assert.equal(obj(obj(endpoint['address'], 'address')['socket_address'], 'socket_address')['port_value'], 9002);
    assert.equal(obj(endpoint['health_check_config'], 'health_check_config')['port_value'], 9003);
  });
}

test('envoy.yaml is FailClose in full-duplex; envoy-failopen.yaml buffers and falls back when the header is missing', async () => {
  const close = await load('envoy.yaml');
  const mode = obj(close.extProc['processing_mode'], 'mode');
  assert.equal(mode['request_body_mode'], 'FULL_DUPLEX_STREAMED');
  assert.equal(mode['response_body_mode'], 'FULL_DUPLEX_STREAMED');
  assert.equal(close.extProc['failure_mode_allow'], false);
  assert.deepEqual(close.routes.map((r) => obj(r['route'], 'route')['cluster']), ['original_destination_cluster']);

  const open = await load('envoy-failopen.yaml');
  assert.equal(open.extProc['failure_mode_allow'], true);
  assert.equal(obj(open.extProc['processing_mode'], 'mode')['request_body_mode'], 'BUFFERED');
  // Header present → the EPP's pod; otherwise (EPP skipped) → the fallback cluster, never
  // ORIGINAL_DST without a destination.
  const [first, second] = open.routes;
  assert.deepEqual(list(obj(first?.['match'], 'match')['headers'], 'headers')[0], { name: 'x-gateway-destination-endpoint', present_match: true });
  assert.equal(obj(first?.['route'], 'route')['cluster'], 'original_destination_cluster');
  assert.equal(obj(second?.['match'], 'match')['headers'], undefined);
  assert.equal(obj(second?.['route'], 'route')['cluster'], 'pool_fallback');
  assert.equal(open.clusters.get('pool_fallback')?.['type'], 'STRICT_DNS');
});
