import type { Outcome } from '../gateway/index.js';
import { runPd } from '../upstream/pd-legs.js';
import { relay } from '../upstream/relay.js';
import { forward, type ForwardInput } from './forward.js';
import { sendJson } from '../upstream/respond.js';

/**
 * A disaggregated request on the standalone proxy: the core's PD machine decides (blame, retry
 * with a fresh pair, the prefill grace, the KV handshake deadline, refusals), the upstream layer's
 * leg runner carries the legs' bytes, and the decode leg's answer reaches the client through
 * the upstream layer's relay, like any answer. A request the machine runs on one endpoint is forwarded.
 */
export async function forwardPd(input: ForwardInput): Promise<Outcome> {
  return runPd({
    handle: input.handle,
    decision: input.decision,
    method: input.req.method ?? 'POST',
    target: input.target,
    headers: input.req.headers,
    dispatcher: input.dispatcher,
    watchdog: input.watchdog,
    scope: input.scope,
    relay: (attempt, status, decoded, chunks, scope, name) => relay({ ...input, scope }, attempt, status, decoded, chunks, name),
    answer: (status, body) => sendJson(input.res, status, body, input.handle.id, input.closeConnection()),
    single: (decision, deadline) => forward({ ...input, decision }, deadline),
  });
}
