import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { chatEvents, jsonBody, startFakeEngines, type FakeEngines, type SeenRequest } from '../support/fake-engines.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/**
 * A request must never fail because of something the gateway added. Triton's OpenAI frontend
 * before 25.11 refuses a body with `stream_options` (FastAPI's 422). Behind `serve --backend`
 * (no runtime annotation) the gateway knows a server's runtime only from its /metrics page; until
 * then it must not add the field, whatever keeps it from knowing: the first scrape not done yet,
 * scraping off, or a scrape that fails. The stream is then counted (`usageEstimated`).
 */

type Metrics = 'hang' | 'fail' | 'none';

/** An old Triton OpenAI frontend: 422 for `stream_options`; its /metrics as `metrics` says. */
function oldTriton(metrics: Metrics) {
  return (req: IncomingMessage, res: ServerResponse, seen: SeenRequest): void => {
    if (req.method === 'GET') {
      if (metrics === 'hang') return; // the first scrape never completes
      res.writeHead(metrics === 'fail' ? 500 : 404, { 'content-type': 'application/json' });
      res.end('{"detail":"Not Found"}');
      return;
    }
    const body = jsonBody(seen);
    if (body.stream_options !== undefined) {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: [{ type: 'extra_forbidden', loc: ['body', 'stream_options'], msg: 'Extra inputs are not permitted' }] }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(chatEvents(body.model ?? 'm', false).join(''));
  };
}

const HOSTS: Readonly<Record<Metrics, string>> = { hang: '127.0.71.2', fail: '127.0.71.3', none: '127.0.71.4' };

describe('a runtime the gateway does not know yet is not sent stream_options (old Triton refuses it)', { timeout: 120_000 }, () => {
  let fakes: FakeEngines;
  const gateways = new Map<Metrics, { process: GatewayProcess; base: string }>();

  before(async () => {
    fakes = await startFakeEngines({ [HOSTS.hang]: oldTriton('hang'), [HOSTS.fail]: oldTriton('fail'), [HOSTS.none]: oldTriton('none') });
    const args: Readonly<Record<Metrics, string[]>> = {
      // The first scrape hangs well past the test: every request arrives before it.
      hang: ['--scrape-timeout', '60000'],
      // Every scrape fails (500).
      fail: [],
      // Scraping off.
      none: ['--scrape-interval', '0'],
    };
    await Promise.all(
      (Object.keys(HOSTS) as Metrics[]).map(async (m) => {
        const port = await freePort();
        const process = await startGatewayProcess(['--backend', `http://${HOSTS[m]}:${fakes.port}`, '--port', String(port), ...args[m]]);
        gateways.set(m, { process, base: `http://127.0.0.1:${port}` });
      }),
    );
  });

  after(async () => {
    await Promise.all([...gateways.values()].map((g) => g.process.stop()));
    await fakes?.close();
  });

  for (const m of ['hang', 'fail', 'none'] as const) {
    const what = { hang: 'before the first scrape', fail: 'while scrapes fail', none: 'with scraping off' }[m];
    test(`${what}: chat and completions streams are answered, their tokens counted and marked estimated`, async () => {
      const g = gateways.get(m);
      assert.ok(g !== undefined);
      for (const [path, extra] of [
        ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] }],
        ['/v1/completions', { prompt: 'hi' }],
      ] as const) {
        const id = `${m}-${path}`;
        const r = await fetch(`${g.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify({ model: 'm', stream: true, ...extra }) });
        const text = await r.text();
        assert.equal(r.status, 200, text);
        assert.match(text, /data: \[DONE\]/);
        const sent = fakes.seen.find((s) => s.requestId === id);
        assert.ok(sent !== undefined);
        assert.equal(jsonBody(sent).stream_options, undefined, 'nothing added');
        const line = await g.process.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
        assert.equal(line['usageEstimated'], true);
        assert.equal(line['completionTokens'], 3, 'one per streamed event with content');
      }
      const metrics = await (await fetch(`http://127.0.0.1:${g.process.adminPort}/metrics`)).text();
      assert.match(metrics, /infergate_usage_estimated_requests_total\{[^}]*\} 2/);
    });
  }
});
