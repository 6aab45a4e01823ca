/**
 * `POST /debug/prefix-match` (only with `SimServerOptions.prefixMatch`, `infergate sim
 * --debug-prefix-match`): how many prompt tokens of a request this server's prefix cache would
 * serve if the request arrived now. It is the benchmark's oracle (src/bench/suite/oracle-router.ts):
 * a placement that asks every pod and sends the request where the longest cached prefix is, the
 * upper bound any prefix-aware router can reach. No real model server has such a route; it is off
 * by default so the simulator's API surface stays the runtime's.
 *
 * The body is a chat or completion request as the generation routes take it (a body with
 * `messages` is chat); it is tokenised the same way (with the real tokenizer when the server has
 * one) and nothing is scheduled. Answer (200, JSON):
 * `{"promptTokens": n, "cachedTokens": k, "running": r, "waiting": w, "kvUsage": u}` with k a
 * multiple of the block size below n, r and w the engine's running and waiting requests (the
 * oracle's load tie-break) and u its KV use (0..1). An invalid request gets the status and error
 * body its generation route would give.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkErrorMessage, checkErrorStatus, checkErrorType, type Engine, type EngineRequest } from './engine/index.js';
import { parseObject, readBody, sendJson } from './http.js';
import { parseGenerate, type GenerateRequest } from './openai.js';
import type { Face } from './runtimes.js';

/** The route's path. */
export const PREFIX_MATCH_PATH = '/debug/prefix-match';

/** What the route answers. */
export interface PrefixMatch {
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly running: number;
  readonly waiting: number;
  readonly kvUsage: number;
}

/** What the route needs of its server. */
export interface PrefixMatchHost {
  readonly engine: Engine;
  readonly face: Face;
  readonly primaryModel: string;
  /** The model's real tokenizer (`infergate sim --tokenizer`), as the generation routes use it; undefined: the stand-in. */
  readonly tokenizer?: { promptTokens(g: GenerateRequest): Promise<readonly number[]> } | undefined;
}

/** Handles `POST /debug/prefix-match` (see the file comment). */
export async function prefixMatchRoute(req: IncomingMessage, res: ServerResponse, host: PrefixMatchHost): Promise<void> {
  const text = await readBody(req);
  if (text === undefined) return sendError(res, host, 413, 'Request body too large.');
  const body = parseObject(text);
  if (body === undefined) return sendError(res, host, 400, 'The request body must be a JSON object.');
  const chat = body['messages'] !== undefined;
  const parsed = parseGenerate(body, chat, host.face, host.primaryModel);
  if (!parsed.ok) return sendError(res, host, parsed.status, parsed.message, parsed.type);
  const g = parsed.request;
  let promptTokens = g.promptTokens;
  if (promptTokens === undefined && host.tokenizer !== undefined) {
    try {
      promptTokens = await host.tokenizer.promptTokens(g);
    } catch (err) {
      return sendError(res, host, 400, `The prompt cannot be tokenised: ${err instanceof Error ? err.message : String(err)}`.slice(0, 500));
    }
  }
  const engineReq: EngineRequest = {
    model: g.model,
    ...(promptTokens !== undefined ? { promptTokens } : { prompt: g.prompt ?? '' }),
    ...(g.maxTokens === undefined ? {} : { maxTokens: g.maxTokens }),
    ...(g.cacheSalt === undefined ? {} : { cacheSalt: g.cacheSalt }),
  };
  const match = host.engine.prefixHitTokens(engineReq);
  if (!match.ok) return sendError(res, host, checkErrorStatus(match.error), checkErrorMessage(match.error), checkErrorType(match.error));
  const stats = host.engine.stats();
  const answer: PrefixMatch = { promptTokens: match.promptTokens, cachedTokens: match.cachedTokens, running: stats.running, waiting: stats.waiting + stats.arriving, kvUsage: stats.kvUsage };
  sendJson(res, 200, JSON.stringify(answer));
}

function sendError(res: ServerResponse, host: PrefixMatchHost, status: number, message: string, type = 'BadRequestError'): void {
  const e = host.face.error(status, message, type);
  sendJson(res, e.status, e.body);
}
