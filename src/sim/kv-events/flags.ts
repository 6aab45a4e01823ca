import { DEFAULT_KV_EVENTS_PORT, DEFAULT_KV_REPLAY_PORT, parseKvEventsConfig, type SimKvEventsOptions } from './config.js';

/** The `infergate sim` flags about KV events, as parsed (strings unchecked). */
export interface KvEventsFlags {
  /** `--kv-events`: on with the defaults. */
  readonly enable?: boolean | undefined;
  /** `--kv-events-config '<json>'`: vLLM's own keys. */
  readonly config?: string | undefined;
  /** `--kv-events-encoding array|map`. */
  readonly encoding?: string | undefined;
  /** `--kv-events-hashes int|bytes`. */
  readonly hashes?: string | undefined;
  /** `--data-parallel-rank N`. */
  readonly dataParallelRank?: string | undefined;
}

export const KV_EVENTS_HELP = `  --kv-events          publish vLLM KV events over ZeroMQ: events on tcp://<host>:${DEFAULT_KV_EVENTS_PORT}, replay on
                       tcp://<host>:${DEFAULT_KV_REPLAY_PORT}, topic kv@<host>:<port>@<model>
  --kv-events-config JSON
                       vLLM's --kv-events-config: enable_kv_cache_events, publisher, endpoint (a *
                       host is --host), replay_endpoint, buffer_steps, hwm, topic, max_queue_size
  --kv-events-encoding array|map
                       EventBatch as a msgpack array (default; vLLM array_like) or map (newer vLLM)
  --kv-events-hashes int|bytes
                       block hashes as ints (default; vLLM builtin hash) or 32 bytes (sha256 family)
  --data-parallel-rank N
                       the DP rank this server stands for (no DP in the sim: one server = one rank):
                       KV-event ports + N, and N in every batch (default 0)
`;

/**
 * The KV-event options the flags ask for, or undefined when events are off.
 * @throws RangeError naming the flag at fault.
 */
export function kvEventsFromFlags(flags: KvEventsFlags): SimKvEventsOptions | undefined {
  let options: SimKvEventsOptions | undefined;
  if (flags.config !== undefined) options = parseKvEventsConfig(flags.config);
  else if (flags.enable === true) {
    options = { endpoint: `tcp://*:${DEFAULT_KV_EVENTS_PORT}`, replayEndpoint: `tcp://*:${DEFAULT_KV_REPLAY_PORT}` };
  }
  const { encoding, hashes, dataParallelRank } = flags;
  if (encoding !== undefined && encoding !== 'array' && encoding !== 'map') throw new RangeError(`--kv-events-encoding must be array or map (got "${encoding}")`);
  if (hashes !== undefined && hashes !== 'int' && hashes !== 'bytes') throw new RangeError(`--kv-events-hashes must be int or bytes (got "${hashes}")`);
  let rank: number | undefined;
  if (dataParallelRank !== undefined) {
    rank = Number(dataParallelRank);
    if (dataParallelRank.trim() === '' || !Number.isInteger(rank) || rank < 0 || rank > 1023) {
      throw new RangeError(`--data-parallel-rank must be an integer from 0 to 1023 (got "${dataParallelRank}")`);
    }
  }
  if (options === undefined) {
    if (flags.config === undefined && (encoding !== undefined || hashes !== undefined || dataParallelRank !== undefined)) {
      throw new RangeError('--kv-events-encoding, --kv-events-hashes and --data-parallel-rank need --kv-events or --kv-events-config');
    }
    return undefined;
  }
  return {
    ...options,
    ...(encoding === undefined ? {} : { encoding: encoding as 'array' | 'map' }),
    ...(hashes === undefined ? {} : { hashes: hashes as 'int' | 'bytes' }),
    ...(rank === undefined ? {} : { dataParallelRank: rank }),
  };
}
