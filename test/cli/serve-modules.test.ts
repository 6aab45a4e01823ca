import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startGatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/**
 * What `serve` loads is what it holds in memory for its whole life: a gateway configured from
 * YAML files loads neither the Kubernetes client (~70 MiB of RSS once loaded), nor gRPC and its
 * TLS helpers (the endpoint picker's), nor ZeroMQ (precise pools' KV events), nor the simulator or
 * the benchmarks (bench/memory/rss-ab.ts measures the difference). Each is imported where it is
 * used (src/cli/main.ts, src/cli/kubernetes-options.ts, src/kvevents/zmq.ts).
 */
const NOT_LOADED = ['/node_modules/@kubernetes/client-node/', '/node_modules/@grpc/grpc-js/', '/node_modules/@grpc/proto-loader/', '/node_modules/grpc-health-check/', '/node_modules/selfsigned/', '/node_modules/zeromq/', '/dist/src/extproc/', '/dist/src/sim/', '/dist/src/bench/', '/dist/src/cli/kubernetes-source.js'];

test('serve -f a YAML file loads neither the Kubernetes client, gRPC, ZeroMQ, the simulator nor the benchmarks', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-modules-'));
  const log = join(dir, 'modules.log');
  try {
    await writeFile(
      join(dir, 'gateway.yaml'),
      `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: ${await freePort()}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: g}]
  rules: [{backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: p}]}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: p}
spec:
  selector: {matchLabels: {app: none}}
  targetPorts: [{number: 8000}]
`,
    );
    const preload = new URL('../support/module-log.js', import.meta.url).href;
    const gateway = await startGatewayProcess(['-f', join(dir, 'gateway.yaml'), '--log-level', 'warn'], { NODE_OPTIONS: `--import=${preload}`, MODULE_LOG: log });
    assert.equal(await gateway.stop(), 0);
    const loaded = (await readFile(log, 'utf8')).split('\n');
    // The log works: it names what serve does load.
    assert.ok(loaded.some((m) => m.endsWith('/dist/src/proxy/standalone.js')), 'the module log names the gateway');
    assert.ok(loaded.some((m) => m.includes('/node_modules/undici/')), 'the module log names CommonJS packages');
    assert.deepEqual(NOT_LOADED.filter((p) => loaded.some((m) => m.includes(p))), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
