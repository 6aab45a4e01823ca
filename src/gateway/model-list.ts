import { GatewayError, toOpenAIError } from '../core/errors.js';
import { apiEndpoint } from './inference-paths.js';
import type { Runtime } from './runtime.js';

/** One `GET /v1/models` entry (OpenAI's `Model`, with vLLM's `parent` for LoRA adapters). */
export interface ModelCard {
  readonly id: string;
  readonly object: 'model';
  readonly created: number;
  readonly owned_by: string;
  /** The base model of a LoRA adapter, when the serving pods say so. */
  readonly parent?: string;
}

/**
 * The models a client can ask for on a listener port: every InferenceModel name of the pools
 * the port's routes reach, then every model those pools' endpoints serve (their own `/v1/models`:
 * base models and loaded LoRA adapters), each once, InferenceModel names first.
 */
export function listModels(runtime: Runtime, port: number): ModelCard[] {
  const listener = runtime.snapshot.listeners.get(port);
  if (listener === undefined) return [];
  const created = Math.floor(runtime.snapshot.createdAt.getTime() / 1000);
  const cards = new Map<string, ModelCard>();
  for (const id of listener.models) cards.set(id, { id, object: 'model', created, owned_by: 'infergate' });
  const pools = new Set<string>();
  for (const rule of listener.routes.rules()) for (const b of rule.backends.items) if (b.type === 'pool') pools.add(b.pool.key);
  for (const key of pools) {
    for (const e of runtime.pools.get(key)?.members.endpoints ?? []) {
      for (const m of e.servedModels ?? []) {
        if (!cards.has(m.id)) cards.set(m.id, { id: m.id, object: 'model', created, owned_by: m.ownedBy ?? 'infergate', ...(m.parent === null ? {} : { parent: m.parent }) });
      }
    }
  }
  return [...cards.values()];
}

/** What the gateway answers itself: `GET /v1/models` and `GET /v1/models/{id}` (ids may contain `/`; a trailing one is dropped). */
export function modelsAnswer(runtime: Runtime | undefined, port: number, requestPath: string): { status: number; body: unknown } | undefined {
  // `/v1/models/` is the list, as on the model servers (inference-paths.ts `apiEndpoint`).
  const path = apiEndpoint(requestPath);
  if (path !== '/v1/models' && !path.startsWith('/v1/models/')) return undefined;
  const cards = runtime === undefined ? [] : listModels(runtime, port);
  if (path === '/v1/models') return { status: 200, body: { object: 'list', data: cards } };
  let id: string;
  try {
    id = decodeURIComponent(path.slice('/v1/models/'.length));
  } catch {
    id = path.slice('/v1/models/'.length);
  }
  const card = cards.find((c) => c.id === id);
  if (card !== undefined) return { status: 200, body: card };
  const shown = id.length > 256 ? `${id.slice(0, 256)}…` : id;
  return { status: 404, body: toOpenAIError(new GatewayError('model_not_found', `The model \`${shown}\` does not exist on this listener (GET /v1/models lists them).`)) };
}

