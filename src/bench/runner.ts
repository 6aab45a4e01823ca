import { performance } from 'node:perf_hooks';
import { Agent } from 'undici';
import { arrivalSchedule, describeArrivals, seededRandom, sweepSeconds, type Arrival, type ArrivalSpec } from './arrivals.js';
import { DEFAULT_TIMEOUT_MS, sendRequest, type Api, type RequestResult } from './client.js';
import { Progress, type ProgressOptions } from './progress.js';
import type { RequestSpec, Workload } from './workloads/types.js';

/*
 * Runs a workload against a URL. Everything is event-driven from one `pump`: a request is sent
 * when there is a free concurrency slot, a due arrival (open loop) and a ready request; every
 * completion pumps again. Open-loop arrivals that find the concurrency cap full wait in a client
 * queue and the wait is recorded (`queuedMs`), so a saturated client is visible in the results
 * rather than silently turning open loop into closed loop.
 */

/** One request as the run recorded it: the workload's identity plus the client's measurements. */
export interface RequestRecord extends RequestResult {
  readonly seq: number;
  readonly model: string;
  /** Sweep stage (0 otherwise). */
  readonly stage: number;
  readonly group?: number;
  readonly user?: number;
  readonly conversationId?: number;
  readonly turn?: number;
  /** With `RunOptions.target`: the label of where the request was sent (e.g. `gateway`, `bypass`). */
  readonly via?: string;
  /** Send time − planned arrival time (open loop); 0 in closed loop. */
  readonly queuedMs: number;
  /** `startMs` and `endMs` are relative to the run's start here. */
  readonly startMs: number;
  readonly endMs: number;
}

/** Why the run stopped sending. */
export type StopReason = 'requests' | 'duration' | 'schedule' | 'workload' | 'signal';

/** Options of {@link runBench}. */
export interface RunOptions {
  /** Server root, e.g. `http://127.0.0.1:8080`. */
  readonly baseUrl: string;
  /**
   * Several server roots taking turns (request n goes to the n-th, modulo their number): active
   * gateway replicas behind a round-robin load balancer. When given, `baseUrl` is not used.
   */
  readonly baseUrls?: readonly string[];
  /**
   * Where the n-th request sent (from 0) goes, and a label recorded as its `via`: a traffic split
   * (say 30 % straight to the pods, the rest through a gateway). When given, `baseUrl` and
   * `baseUrls` are not used.
   */
  readonly target?: (n: number) => { readonly url: string; readonly via: string };
  readonly workload: Workload;
  readonly arrivals: ArrivalSpec;
  /** Seed of the arrival times (workloads carry their own). Default 1. */
  readonly seed?: number;
  /**
   * Most requests to send. Default: unbounded when a duration is given, the arrivals are a sweep
   * (it ends with its last stage) or the workload is finite (it ends by itself); otherwise the
   * workload's `size` (one pass).
   */
  readonly maxRequests?: number;
  /** Stop sending after this many seconds; requests in flight then still complete. */
  readonly durationSeconds?: number;
  /** Most requests in flight (open loop; closed loop uses its concurrency). Default unbounded. */
  readonly maxConcurrency?: number;
  /** Default `chat`. */
  readonly api?: Api;
  readonly timeoutMs?: number;
  readonly endpointHeader?: string;
  readonly ignoreEos?: boolean;
  readonly headers?: Readonly<Record<string, string>>;
  /** Stops the run: nothing more is sent and requests in flight are aborted (recorded as `aborted`). */
  readonly signal?: AbortSignal;
  /** The progress line; `false` for none. Default: on stderr. */
  readonly progress?: ProgressOptions | false;
  /**
   * The servers' modelled time runs this many times faster than the wall clock (the simulator's
   * `--time-scale`). The run then works in modelled time: arrival times and `durationSeconds` are
   * modelled (sent `timeScale` × sooner), and every recorded time is multiplied by it. Wall-clock
   * costs outside the servers (proxy, network, this client) are multiplied too. Default 1.
   */
  readonly timeScale?: number;
  /** Called with each record as its request completes (e.g. to stop a sweep early through `signal`). */
  readonly onRecord?: (record: RequestRecord) => void;
}

/** What {@link runBench} returns. */
export interface RunResult {
  /** Every request sent, by `seq`. */
  readonly records: RequestRecord[];
  /** ISO time of the start. */
  readonly startedAt: string;
  /** From the start to the last completion. */
  readonly wallMs: number;
  readonly stoppedBy: StopReason;
  /** `describeArrivals` of the arrival process. */
  readonly arrivals: string;
}

/** `result` with its durations multiplied by `scale` (start and end are rebased by the caller). */
function scaleDurations(result: RequestResult, scale: number): RequestResult {
  if (scale === 1) return result;
  return {
    ...result,
    ttftMs: result.ttftMs === undefined ? undefined : result.ttftMs * scale,
    itlMs: result.itlMs.map((v) => v * scale),
    e2eMs: result.e2eMs * scale,
  };
}

/** A result for a failure sendRequest did not anticipate, so one bug cannot hang the run. */
function failedResult(err: unknown): RequestResult {
  const t = performance.now();
  return {
    startMs: t,
    endMs: t,
    ttftMs: undefined,
    itlMs: [],
    e2eMs: 0,
    promptTokens: undefined,
    outputTokens: 0,
    outputTokensSource: 'chunks',
    status: 0,
    ok: false,
    errorKind: 'connection',
    errorCode: 'client_error',
    errorMessage: err instanceof Error ? err.message : String(err),
    endpoint: undefined,
    text: '',
  };
}

/** A sleep that can be cut short. */
class Sleeper {
  #wake: (() => void) | undefined;
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#wake = done;
    });
  }
  wake(): void {
    this.#wake?.();
  }
}

/**
 * Runs the workload until a bound is reached (request count, duration, end of sweep, end of a
 * finite workload, or `signal`) and every request in flight has finished; then closes its
 * connection pool. Never rejects because of a failed request — failures are records.
 */
export async function runBench(options: RunOptions): Promise<RunResult> {
  const { workload, arrivals } = options;
  const scale = options.timeScale ?? 1;
  if (!(scale > 0 && Number.isFinite(scale))) throw new RangeError(`timeScale must be a positive number (got ${scale})`);
  const closed = arrivals.kind === 'closed';
  const open = !closed;
  const cap = closed ? arrivals.concurrency : (options.maxConcurrency ?? Number.POSITIVE_INFINITY);
  if (!(cap >= 1)) throw new RangeError(`concurrency must be at least 1 (got ${cap})`);
  const unboundedByDefault = options.durationSeconds !== undefined || arrivals.kind === 'sweep' || workload.finite;
  const limit = options.maxRequests ?? (unboundedByDefault ? Number.POSITIVE_INFINITY : workload.size);
  const schedule = arrivalSchedule(arrivals, seededRandom(options.seed ?? 1));
  const agent = new Agent({
    connections: Number.isFinite(cap) ? cap : null,
    keepAliveTimeout: 10_000,
    pipelining: 1,
  });
  const runAbort = new AbortController();
  const onSignal = (): void => runAbort.abort();
  options.signal?.addEventListener('abort', onSignal, { once: true });
  if (options.signal?.aborted === true) runAbort.abort();

  const durationS = options.durationSeconds ?? (arrivals.kind === 'sweep' ? sweepSeconds(arrivals.stages) : undefined);
  const progressS = durationS === undefined ? undefined : durationS / scale;
  const progress = options.progress === false ? undefined : new Progress(Number.isFinite(limit) ? limit : undefined, progressS, options.progress);
  const records: RequestRecord[] = [];
  const due: Arrival[] = [];
  const sleeper = new Sleeper();
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  let sent = 0;
  let inFlight = 0;
  let scheduleDone = closed;
  let deadlinePassed = false;
  let stoppedBy: StopReason | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const stop = (reason: StopReason): void => {
    stoppedBy ??= reason;
  };
  const deadline =
    options.durationSeconds === undefined
      ? undefined
      : setTimeout(() => {
          deadlinePassed = true;
          stop('duration');
          sleeper.wake();
          pump();
        }, (options.durationSeconds * 1000) / scale);

  const dispatch = (spec: RequestSpec, arrival: Arrival | undefined): void => {
    sent++;
    inFlight++;
    progress?.sent();
    const now = (performance.now() - t0) * scale;
    const queuedMs = arrival === undefined ? 0 : Math.max(0, now - arrival.atMs);
    const urls = options.baseUrls;
    const target = options.target?.(sent - 1);
    void sendRequest(spec, {
      baseUrl: target !== undefined ? target.url : urls === undefined || urls.length === 0 ? options.baseUrl : (urls[(sent - 1) % urls.length] as string),
      api: options.api ?? 'chat',
      dispatcher: agent,
      signal: runAbort.signal,
      timeoutMs: (options.timeoutMs ?? DEFAULT_TIMEOUT_MS) / scale,
      ...(options.endpointHeader === undefined ? {} : { endpointHeader: options.endpointHeader }),
      ...(options.ignoreEos === undefined ? {} : { ignoreEos: options.ignoreEos }),
      ...(options.headers === undefined ? {} : { headers: options.headers }),
    })
      .catch((err: unknown): RequestResult => failedResult(err))
      .then((wall) => {
      inFlight--;
      const result = scaleDurations(wall, scale);
      const record: RequestRecord = {
        ...result,
        seq: spec.seq,
        model: spec.model,
        stage: arrival?.stage ?? 0,
        ...(spec.group === undefined ? {} : { group: spec.group, user: spec.user }),
        ...(spec.conversationId === undefined ? {} : { conversationId: spec.conversationId, turn: spec.turn }),
        ...(target === undefined ? {} : { via: target.via }),
        queuedMs,
        startMs: (wall.startMs - t0) * scale,
        endMs: (wall.endMs - t0) * scale,
      };
      records.push(record);
      options.onRecord?.(record);
      progress?.finished(result.ok, result.ttftMs);
      workload.complete(spec, { ok: result.ok, text: result.text });
      pump();
    });
  };

  /** Sends whatever may be sent now; resolves the run when nothing more will be. */
  function pump(): void {
    if (runAbort.signal.aborted) stop('signal');
    while (stoppedBy === undefined && inFlight < cap) {
      if (sent >= limit) {
        stop('requests');
        break;
      }
      if (workload.done) {
        stop('workload');
        break;
      }
      if (open && due.length === 0) {
        if (scheduleDone) stop('schedule');
        break;
      }
      const spec = workload.next();
      if (spec === undefined) {
        // Nothing ready and nothing in flight that could make something ready: a finite end.
        if (inFlight === 0) stop('workload');
        break;
      }
      dispatch(spec, open ? due.shift() : undefined);
    }
    if (stoppedBy !== undefined) sleeper.wake();
    if (stoppedBy !== undefined && inFlight === 0) finish();
  }

  // Open loop: feed due arrivals on the clock until the schedule ends or the run stops.
  const feed = async (): Promise<void> => {
    if (schedule === undefined) return;
    for (;;) {
      if (stoppedBy !== undefined) return;
      // Arrivals beyond the request bound are never needed.
      if (sent + due.length >= limit) return;
      const next = schedule.next();
      if (next.done === true) {
        scheduleDone = true;
        pump();
        return;
      }
      const wait = next.value.atMs / scale - (performance.now() - t0);
      if (wait > 0) await sleeper.sleep(wait);
      if (stoppedBy !== undefined || deadlinePassed) return;
      due.push(next.value);
      pump();
    }
  };

  runAbort.signal.addEventListener('abort', () => pump(), { once: true });
  progress?.start();
  try {
    pump();
    await Promise.all([feed(), finished]);
  } finally {
    if (deadline !== undefined) clearTimeout(deadline);
    options.signal?.removeEventListener('abort', onSignal);
    progress?.stop();
    await agent.close();
  }
  records.sort((a, b) => a.seq - b.seq);
  return {
    records,
    startedAt,
    wallMs: performance.now() - t0,
    stoppedBy: stoppedBy ?? 'requests',
    arrivals: describeArrivals(arrivals),
  };
}
