import type { Dispatcher } from 'undici';
import type { Decision, Outcome, RequestHandle } from '../gateway/index.js';
import type { Scope } from '../upstream/scope.js';
import { sendToEndpoints } from '../upstream/send.js';
import type { Deadline, Watchdog } from '../upstream/watchdog.js';
import type { ClientRequest, ClientResponse } from './client.js';

export interface ForwardInput {
  readonly req: ClientRequest;
  readonly res: ClientResponse;
  /** The request target to forward: the normalised path and the query as received. */
  readonly target: string;
  readonly handle: RequestHandle;
  readonly decision: Decision;
  readonly dispatcher: Dispatcher;
  readonly scope: Scope;
  readonly watchdog: Watchdog;
  /** True when the response must ask the client to close the connection (HTTP/1.1 while draining). */
  readonly closeConnection: () => boolean;
}

/** Sends a client's request to the decision's endpoints and relays the answer (upstream/send.ts). */
export function forward(input: ForwardInput, startedDeadline?: Deadline): Promise<Outcome> {
  return sendToEndpoints({ ...input, method: input.req.method ?? 'GET', headers: input.req.headers }, startedDeadline);
}
