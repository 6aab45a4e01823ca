/**
 * The simulator's KV-event settings: vLLM's `--kv-events-config` keys (vllm-project/vllm
 * vllm/config/kv_events.py) plus the sim-only wire choices, and the endpoint rules of vLLM's
 * ZmqEventPublisher (vllm/distributed/kv_events.py).
 */

/** How a simulated server publishes KV events (`SimServerOptions.kvEvents`). */
export interface SimKvEventsOptions {
  /**
   * The PUB socket's ZeroMQ endpoint, e.g. `tcp://127.0.0.2:5557`. A `*` host means the server's
   * own host (vLLM's `tcp://*:5557` binds every interface; simulated pods share one machine);
   * a `*` port takes a free port (ZeroMQ's wildcard: read the bound one from the running
   * server). Bound when the host is `*`, `::`, the server's own host or the port is `*` (and for
   * ipc://); otherwise connected, as vLLM does ("bind stable, connect volatile").
   */
  readonly endpoint: string;
  /** The ROUTER replay socket's endpoint (always bound); none by default, as in vLLM. */
  readonly replayEndpoint?: string | null;
  /** First frame of every message; default `kv@<host>:<port>@<model>` (the server's host, HTTP port and primary model). */
  readonly topic?: string;
  /** `array` (default: vLLM's array_like EventBatch, as its subscriber example reads) or `map` (newer vLLM). */
  readonly encoding?: 'array' | 'map';
  /** `int` (default: vLLM's builtin hash) or `bytes` (the sha256 family: 32 bytes). */
  readonly hashes?: 'int' | 'bytes';
  /** Batches kept for replay (vLLM `buffer_steps`); default 10,000. */
  readonly bufferSteps?: number;
  /** The PUB socket's send high-water mark (vLLM `hwm`); default 100,000. */
  readonly hwm?: number;
  /**
   * The data-parallel rank this server stands for. The simulator has no data parallelism (one
   * server = one rank); a rank r > 0 offsets both ports by r and is written in every batch, as
   * vLLM's rank r publishes. Default 0.
   */
  readonly dataParallelRank?: number;
}

export const DEFAULT_KV_EVENTS_PORT = 5557;
export const DEFAULT_KV_REPLAY_PORT = 5558;
export const DEFAULT_BUFFER_STEPS = 10_000;
export const DEFAULT_HWM = 100_000;

/** The keys vLLM's KVEventsConfig accepts (unknown keys are refused, as vLLM's config does). */
const VLLM_KEYS = new Set(['enable_kv_cache_events', 'publisher', 'endpoint', 'replay_endpoint', 'buffer_steps', 'hwm', 'max_queue_size', 'topic']);

/**
 * Reads vLLM's `--kv-events-config` JSON. Returns the options (the vLLM defaults where a key is
 * absent: `endpoint` `tcp://*:5557`, no replay, `buffer_steps` 10,000, `hwm` 100,000, the topic
 * the sim's default), or undefined when events are off (`enable_kv_cache_events` false or
 * `publisher` "null"). `max_queue_size` is accepted and unused (the sim publishes in-process).
 *
 * @throws RangeError naming the problem (bad JSON, not an object, an unknown key, a wrong type).
 */
export function parseKvEventsConfig(json: string): SimKvEventsOptions | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new RangeError(`--kv-events-config is not valid JSON (${(err as Error).message}); e.g. '{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557"}'`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RangeError('--kv-events-config must be a JSON object');
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!VLLM_KEYS.has(key)) throw new RangeError(`--kv-events-config: unknown key "${key}" (vLLM's keys: ${[...VLLM_KEYS].join(', ')})`);
  }
  const enabled = o['enable_kv_cache_events'] ?? false;
  if (typeof enabled !== 'boolean') throw new RangeError('--kv-events-config: enable_kv_cache_events must be true or false');
  const publisher = o['publisher'] ?? (enabled ? 'zmq' : 'null');
  if (publisher !== 'zmq' && publisher !== 'null') throw new RangeError(`--kv-events-config: publisher must be "zmq" or "null" (got ${JSON.stringify(publisher)})`);
  const str = (key: string): string | undefined => {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new RangeError(`--kv-events-config: ${key} must be a string`);
    return v;
  };
  const count = (key: string, max: number): number | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw new RangeError(`--kv-events-config: ${key} must be an integer from 1 to ${max}`);
    return v;
  };
  const endpoint = str('endpoint') ?? `tcp://*:${DEFAULT_KV_EVENTS_PORT}`;
  const replayEndpoint = str('replay_endpoint');
  const topic = str('topic');
  const bufferSteps = count('buffer_steps', 10_000_000);
  const hwm = count('hwm', 2 ** 31 - 1);
  count('max_queue_size', 2 ** 31 - 1);
  if (!enabled || publisher === 'null') return undefined;
  return {
    endpoint,
    ...(replayEndpoint === undefined ? {} : { replayEndpoint }),
    ...(topic === undefined ? {} : { topic }),
    ...(bufferSteps === undefined ? {} : { bufferSteps }),
    ...(hwm === undefined ? {} : { hwm }),
  };
}

/** A parsed endpoint: `tcp://host:port` (port a number or `*`), or another transport kept whole. */
interface TcpEndpoint {
  readonly host: string;
  readonly port: number | '*';
}

function parseTcp(endpoint: string): TcpEndpoint | undefined {
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/[\]]+|::):(\d{1,5}|\*)$/.exec(endpoint);
  if (m === null) return undefined;
  const port = m[2] === '*' ? '*' : Number(m[2]);
  if (port !== '*' && port > 65535) return undefined;
  return { host: m[1] as string, port };
}

/** An endpoint resolved for one server: where to bind or connect. */
export interface ResolvedEndpoint {
  readonly endpoint: string;
  readonly bind: boolean;
}

/**
 * Resolves an endpoint for a server on `host` at data-parallel rank `rank`: `*` host ⇒ `host`,
 * port + rank (vLLM `offset_endpoint_port`; a `*` port stays free), bind or connect (see
 * `SimKvEventsOptions.endpoint`). `alwaysBind` for the replay socket (vLLM always binds it).
 *
 * @throws RangeError for an endpoint that is neither tcp://host:port nor ipc://path, a rank
 * offset past port 65535, or a rank > 0 on ipc (vLLM refuses it too).
 */
export function resolveEndpoint(endpoint: string, host: string, rank: number, alwaysBind = false): ResolvedEndpoint {
  if (endpoint.startsWith('ipc://')) {
    if (rank > 0) throw new RangeError(`kv events endpoint ${endpoint}: a data-parallel rank needs a tcp endpoint`);
    return { endpoint, bind: true };
  }
  const tcp = parseTcp(endpoint);
  if (tcp === undefined) throw new RangeError(`kv events endpoint must look like tcp://HOST:PORT or ipc://PATH (got "${endpoint}")`);
  const own = host.includes(':') ? `[${host}]` : host;
  const wildcard = tcp.host === '*' || tcp.host === '::' || tcp.host === '[::]';
  const bindHost = tcp.host === '*' ? own : tcp.host;
  let port: string;
  if (tcp.port === '*') port = '*';
  else {
    const p = tcp.port + rank;
    if (p > 65535) throw new RangeError(`kv events endpoint ${endpoint}: port + data-parallel rank ${rank} is past 65535`);
    port = String(p);
  }
  const bind = alwaysBind || wildcard || tcp.port === '*' || bindHost === own || bindHost === host;
  return { endpoint: `tcp://${bindHost}:${port}`, bind };
}

/**
 * The options of replica `index` of a fleet whose replicas share one host `portStep` ports apart:
 * both endpoints' numeric tcp ports move by `index × portStep`, as the HTTP port does.
 */
export function stepKvEvents(options: SimKvEventsOptions, index: number, portStep: number): SimKvEventsOptions {
  const offset = index * portStep;
  if (offset === 0) return options;
  const step = (endpoint: string): string => {
    const tcp = parseTcp(endpoint);
    return tcp === undefined || tcp.port === '*' ? endpoint : `tcp://${tcp.host}:${tcp.port + offset}`;
  };
  const replay = options.replayEndpoint;
  return { ...options, endpoint: step(options.endpoint), ...(replay === undefined || replay === null ? {} : { replayEndpoint: step(replay) }) };
}

/** The default topic: `kv@<host>:<port>@<model>` (llm-d-inference-sim and the llm-d precise-scorer README). */
export function defaultTopic(host: string, port: number, model: string): string {
  return `kv@${host}:${port}@${model}`;
}
