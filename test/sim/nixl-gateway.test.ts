import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateAnswer, renderChat, tokenize } from '../../src/sim/engine/index.js';
import { chatBody, gatewayForPools, handled, poolYaml, post, startSmartEnv, type SmartEnv } from '../support/smart.js';
import { sseEvents } from './helpers.js';

/*
 * The simulator's vLLM P/D face behind the real gateway (a process, over loopback): the gateway's
 * NIXL dialect (prefill body with do_remote_decode → the prefill's kv_transfer_params → decode
 * body with them) runs against it end to end. The gateway's own PD behaviour is tested in
 * test/integration; this test holds the simulator to what the gateway sends and expects.
 */

const ROLE = 'llm-d.ai/role';

function pdPool(port: number): string {
  return `${poolYaml('nixl', port, { 'infergate.dev/routing': 'pd: {uncachedThresholdTokens: 0}' })}---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: nixl-pd}
spec:
  poolRef: {name: nixl}
  modelServerRuntime: vllm
  profile:
    pd:
      pdRoleLabelName: ${ROLE}
`;
}

describe('vLLM P/D face behind the gateway', { timeout: 120_000 }, () => {
  let env: SmartEnv;

  before(async () => {
    const common = { runtime: 'vllm', profile: 'tiny', timeScale: 20, sideChannelPort: 0 } as const;
    env = await startSmartEnv(
      [
        { name: 'nixl-prefill-0', host: '127.0.3.40', labels: { pool: 'nixl', [ROLE]: 'prefill' }, pdRole: 'prefill', ...common },
        { name: 'nixl-decode-0', host: '127.0.3.41', labels: { pool: 'nixl', [ROLE]: 'decode' }, pdRole: 'decode', ...common },
      ],
      (port, pods) => gatewayForPools(port, ['nixl']) + pdPool(pods.port) + pods.podsYaml(),
    );
  });

  after(async () => {
    await env?.close();
  });

  test('a chat completion, streamed and not, is prefilled on the prefill pod and decoded on the decode pod from the transferred KV', async () => {
    const prefill = env.pods.get('nixl-prefill-0');
    const decode = env.pods.get('nixl-decode-0');
    for (const stream of [false, true]) {
      const content = `Tell me about KV transfers, please (${stream ? 'streamed' : 'whole'}).`;
      const prompt = tokenize(renderChat([{ role: 'user', content }]));
      const id = `nixl-${String(stream)}`;
      const before = { prefill: prefill.engine.stats(), decode: decode.engine.stats() };
      const r = await post(env.base, chatBody('mymodel', content, { max_tokens: 6, ignore_eos: true, stream }), { 'x-request-id': id });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.pod, 'nixl-decode-0', 'the client gets the decode pod’s answer');
      const expected = generateAnswer(prompt, 'mymodel', 6, true).texts.join('');
      const text = stream
        ? sseEvents(r.text)
            .filter((e) => e !== '[DONE]')
            .map((e) => (JSON.parse(e) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
            .join('')
        : ((JSON.parse(r.text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? '');
      assert.equal(text, expected);
      const p = prefill.engine.stats();
      const d = decode.engine.stats();
      assert.equal(p.generationTokensTotal - before.prefill.generationTokensTotal, 1, 'the prefill pod sampled one token');
      assert.equal(p.prefillTokensTotal - before.prefill.prefillTokensTotal, prompt.length, 'and computed the prompt');
      assert.equal(d.prefillTokensTotal, before.decode.prefillTokensTotal, 'the decode pod computed none of it');
      assert.equal(d.remotePrefillTokensTotal - before.decode.remotePrefillTokensTotal, prompt.length, 'its KV came from the prefill pod');
      assert.equal(p.heldKvBlocks, 0, 'the prefill freed the KV once read');
      const line = await handled(env.gateway, id);
      assert.equal(line['pod'], 'nixl-decode-0');
    }
  });
});
