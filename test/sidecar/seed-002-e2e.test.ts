import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { startSimServer, type RunningSimServer } from '../../src/sim/index.js';
import { startSidecar, type RunningSidecar } from '../../src/sidecar/server.js';
import { configDir } from '../support/config.js';
import { startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { memoryLogger } from '../support/memory-source.js';
import { freePortOnAll } from '../support/ports.js';
import { handledLine } from '../support/sidecar-env.js';

// Seed 002's SGLang PD pool behind Envoy, end to end: client → Envoy stand-in → the endpoint
// picker (the core: it picks the decode pod and names the prefill in x-prefiller-host-port) →
// the decode pod's pd-sidecar → the prefill leg on the prefill simulator and the decode leg on
// the decode simulator beside the sidecar. Picker and sidecar read the same files (deploy/examples/pd/).

const SEED_PD = await readFile(fileURLToPath(new URL('../../../test/fixtures/seeds/002-prefix-sglang-pd.yaml', import.meta.url)), 'utf8');
const ROLE = 'rolebasedgroup.workloads.x-k8s.io/role';
const HOSTS = { prefill: '127.0.11.32', decode: '127.0.11.33' };
const POOL = 'default/qwen-inference-pool';

function pod(name: string, ip: string, role: string): string {
  return `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, labels: {alibabacloud.com/inference_backend: sglang, ${ROLE}: ${role}}}
status: {podIP: ${ip}}
`;
}

describe('seed 002 PD pool behind Envoy: picker → pd-sidecar → simulators', { timeout: 120_000 }, () => {
  let prefill: RunningSimServer;
  let decode: RunningSimServer;
  let eppGateway: Gateway;
  let sidecarGateway: Gateway;
  let epp: ExtProcServer;
  let sidecar: RunningSidecar;
  let envoy: EnvoyStandin;
  let config: Awaited<ReturnType<typeof configDir>>;
  const eppLog = memoryLogger();
  const sidecarLog = memoryLogger();

  before(async () => {
    // The pool's target port (8000 in the seed) is the prefill server's and the decode pod's sidecar's.
    const port = await freePortOnAll([HOSTS.prefill, HOSTS.decode]);
    const decodePort = await freePortOnAll([HOSTS.decode]);
    const bootstrap = await freePortOnAll([HOSTS.prefill]);
    assert.match(SEED_PD, /targetPortNumber: 8000/);
    assert.match(SEED_PD, /bootstrapPort: 34000/);
    config = await configDir(SEED_PD.replace('targetPortNumber: 8000', `targetPortNumber: ${port}`).replace('bootstrapPort: 34000', `bootstrapPort: ${bootstrap}`) + pod('qwen-prefill-0', HOSTS.prefill, 'prefill') + pod('qwen-decode-0', HOSTS.decode, 'decode'));
    const sim = { runtime: 'sglang' as const, profile: 'tiny' as const, timeScale: 20, model: ['mymodel'] };
    prefill = await startSimServer({ ...sim, host: HOSTS.prefill, port, name: 'qwen-prefill-0', pdRole: 'prefill', bootstrapPort: bootstrap });
    decode = await startSimServer({ ...sim, host: HOSTS.decode, port: decodePort, name: 'qwen-decode-0', pdRole: 'decode' });
    // The decode pod: `infergate pd-sidecar --port <target port> --decode-url http://<decode>:<port> --pool-name qwen-inference-pool -f …`.
    sidecarGateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger: sidecarLog.logger, scrapeIntervalMs: 0 });
    sidecar = await startSidecar({ gateway: sidecarGateway, poolKey: POOL, decodeUrl: new URL(`http://${HOSTS.decode}:${decodePort}`), decodeName: 'qwen-decode-0', address: HOSTS.decode, port, logger: sidecarLog.logger });
    // The picker: `infergate epp --pool-name qwen-inference-pool -f …`; it scrapes the decode pod's /metrics through the sidecar.
    eppGateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger: eppLog.logger });
    epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(eppGateway, { poolKey: POOL, inFlight: new InFlight() }), ready: () => true, logger: eppLog.logger });
    envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
    await until(() => {
      const members = eppGateway.runtime?.pools.get(POOL)?.members.endpoints ?? [];
      return members.length === 2 && members.every((e) => e.metrics !== undefined);
    }, 30_000, 'the picker scraped both pods (the decode pod through its sidecar)');
  });

  after(async () => {
    await envoy?.close();
    await epp?.close(1000);
    await sidecar?.close(1000);
    await eppGateway?.close();
    await sidecarGateway?.close();
    await Promise.all([prefill?.close(), decode?.close()]);
    await config?.remove();
  });

  for (const stream of [false, true]) {
    test(`a ${stream ? 'streamed' : 'non-streamed'} chat request: 200, both legs ran, the picker's and the sidecar's Request Handled lines`, async () => {
      const before = { p: prefill.stats().received, d: decode.stats().received };
      const res = await request(`${envoy.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mymodel', max_tokens: 8, stream, messages: [{ role: 'user', content: `Plan a trip to Kyoto (${stream}).` }] }),
      });
      const text = await res.body.text();
      assert.equal(res.statusCode, 200, text);
      if (stream) assert.match(text, /data: \[DONE\]/);
      else assert.equal((JSON.parse(text) as { object: string }).object, 'chat.completion');
      const ex = envoy.exchanges.at(-1)!;
      assert.equal(ex.destination, `${HOSTS.decode}:${sidecar.port}`, 'Envoy sent the request to the decode pod (its sidecar)');
      assert.equal(ex.upstreamHeaders['x-prefiller-host-port'], `${HOSTS.prefill}:${sidecar.port}`, 'the picker named the prefill');
      assert.equal(prefill.stats().received, before.p + 1, 'the prefill leg ran');
      assert.equal(decode.stats().received, before.d + 1, 'the decode leg ran');
      const id = ex.upstreamHeaders['x-request-id'] as string;
      await until(() => handledLine(eppLog.lines, id) !== undefined && handledLine(sidecarLog.lines, id) !== undefined, 20_000, 'both Request Handled lines');
      const picked = handledLine(eppLog.lines, id)!;
      const carried = handledLine(sidecarLog.lines, id)!;
      assert.equal(picked['status'], 200);
      assert.equal((picked['pd'] as Record<string, unknown>)['disaggregated'], true);
      assert.equal(carried['status'], 200);
      const pd = carried['pd'] as Record<string, unknown>;
      assert.equal(pd['reason'], 'pinned');
      assert.equal(pd['prefillPod'], 'qwen-prefill-0');
      assert.equal(pd['decodePod'], 'qwen-decode-0');
      await until(() => sidecar.inFlight.size === 0, 20_000, 'sidecar idle');
    });
  }
});
