import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { startAdminServer, type AdminServer, type MetricsText, type Readiness } from '../observability/admin-server.js';
import type { Logger } from '../observability/logger.js';
import { ListenError } from '../proxy/port-listener.js';
import { forwardLines } from './log-lines.js';
import { mergeDebug, mergeReadiness, type WorkerAnswer } from './merge.js';
import { isToPrimary, WORKER_COUNT_ENV, WORKER_ID_ENV, type PrefixBatch, type Question, type ToPrimary, type ToWorker } from './protocol.js';

/** How long the primary waits for a worker's answer to an admin-port question. */
export const ANSWER_TIMEOUT_MS = 2_000;
/** A worker that lived less than this before dying counts as crashing at start: its replacement waits. */
const CRASH_WINDOW_MS = 10_000;
/** The first wait before replacing a worker that keeps crashing at start; doubles each time. */
const FIRST_RESTART_DELAY_MS = 250;
/** The longest wait before replacing a worker that keeps crashing at start. */
const MAX_RESTART_DELAY_MS = 10_000;
/** Time a worker gets past the shutdown grace before the primary kills it (its own grace stops it first). */
const SHUTDOWN_MARGIN_MS = 15_000;
/** Relay messages in the channel to one worker before further ones to it are dropped (prefix-share.ts). */
const MAX_UNSENT_RELAYS = 16;
/**
 * The relay's tick: batches that arrive within it go to every worker as one message, so the
 * primary sends N messages per tick whatever N, not N − 1 per batch (N × (N − 1) × 200 a second
 * with every worker busy, 48,000 at 16 workers).
 */
const RELAY_TICK_MS = 5;
/** Most hashes one relay message carries; batches past it in a tick are dropped (counted in the log at shutdown). */
const MAX_RELAY_HASHES = 4 * 65_536;

export interface PrimaryOptions {
  /** Workers to run (≥ 2). */
  readonly count: number;
  readonly logger: Logger;
  readonly adminAddress: string;
  readonly adminPort: number;
  /** The workers' shutdown grace, in milliseconds (see SHUTDOWN_MARGIN_MS). */
  readonly shutdownGraceMs: number;
  /** Resolves when the gateway should stop (a signal, or the parent gone). */
  readonly untilStop: () => Promise<string>;
}

/** One worker slot: the process in it now, if any. */
interface Slot {
  readonly id: number;
  worker: Worker | undefined;
  started: boolean;
  startedAt: number;
  /** Starts in a row that died within CRASH_WINDOW_MS. */
  quickDeaths: number;
  timer: NodeJS.Timeout | undefined;
  /** Prefix batches sent to it and not yet written. */
  unsent: number;
}

/**
 * The primary of `infergate serve --workers N` (node:cluster): it serves no request itself. It
 * forks N workers, each a whole gateway (configuration, scheduling, accounting, the data-plane
 * listeners, which cluster shares: the primary accepts each connection and hands it to the
 * workers in turn); answers the admin port for all of them (ready when every worker is;
 * `/metrics` their series combined by each series' aggregator; `/debug/endpoints` merged);
 * writes their log lines, whole, to its stdout; relays their prefix-index records to each
 * other; replaces a worker that dies (logged, with a growing wait while replacements keep dying
 * at start); and on SIGTERM or SIGINT tells every worker to drain, waits for all of them and
 * for the last of their log lines, then returns 0.
 *
 * Start-up: worker 0 starts alone; if it exits before its gateway is up (invalid configuration,
 * a port that cannot bind: it has said why on stderr), the primary returns its exit code and no
 * other worker starts. Resolves with the exit code.
 */
export async function runPrimary(opts: PrimaryOptions): Promise<number> {
  const logger = opts.logger;
  // Each worker is this same command (process.argv), its output on pipes of its own (log-lines.ts).
  cluster.setupPrimary({ silent: true, serialization: 'advanced' });
  const slots: Slot[] = Array.from({ length: opts.count }, (_, id) => ({ id, worker: undefined, started: false, startedAt: 0, quickDeaths: 0, timer: undefined, unsent: 0 }));
  const outputs: Array<Promise<void>> = [];
  const questions = new Map<number, (body: unknown) => void>();
  let nextQuestion = 0;
  let stopping = false;
  let firstStart: ((outcome: number | 'started') => void) | undefined;

  const ask = (slot: Slot, what: Question): Promise<WorkerAnswer<unknown>> => {
    const w = slot.worker;
    if (w === undefined || !w.isConnected()) return Promise.resolve({ worker: slot.id, pid: w?.process.pid, body: undefined, missing: 'not running (being replaced)' });
    const id = nextQuestion++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        questions.delete(id);
        resolve({ worker: slot.id, pid: w.process.pid, body: undefined, missing: `did not answer within ${ANSWER_TIMEOUT_MS} ms` });
      }, ANSWER_TIMEOUT_MS);
      questions.set(id, (body) => {
        clearTimeout(timer);
        resolve({ worker: slot.id, pid: w.process.pid, body });
      });
      w.send({ t: 'infergate:ask', id, what } satisfies ToWorker);
    });
  };
  const askAll = (what: Question): Promise<Array<WorkerAnswer<unknown>>> => Promise.all(slots.map((s) => ask(s, what)));

  let relayed: Array<{ from: number; batch: PrefixBatch }> = [];
  let relayedHashes = 0;
  let relayTimer: NodeJS.Timeout | undefined;
  let relayDropped = 0;
  const relayTick = (): void => {
    relayTimer = undefined;
    const message: ToWorker = { t: 'infergate:prefix', batches: relayed };
    const senders = new Set(relayed.map((r) => r.from));
    relayed = [];
    relayedHashes = 0;
    for (const s of slots) {
      const w = s.worker;
      // A worker whose own batches are all there is gets nothing.
      if (w === undefined || !s.started || !w.isConnected() || (senders.size === 1 && senders.has(s.id))) continue;
      if (s.unsent >= MAX_UNSENT_RELAYS) {
        relayDropped++;
        continue;
      }
      s.unsent++;
      w.send(message, undefined, {}, () => s.unsent--);
    }
  };
  const relay = (from: Slot, message: ToPrimary & { t: 'infergate:prefix' }): void => {
    if (relayedHashes + message.batch.hashes.length > MAX_RELAY_HASHES) {
      relayDropped++;
      return;
    }
    relayed.push({ from: from.id, batch: message.batch });
    relayedHashes += message.batch.hashes.length;
    relayTimer ??= setTimeout(relayTick, RELAY_TICK_MS);
  };

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    slot.started = false;
    slot.startedAt = performance.now();
    const w = cluster.fork({ [WORKER_ID_ENV]: String(slot.id), [WORKER_COUNT_ENV]: String(opts.count) });
    slot.worker = w;
    if (w.process.stdout !== null) outputs.push(forwardLines(w.process.stdout, process.stdout));
    if (w.process.stderr !== null) outputs.push(forwardLines(w.process.stderr, process.stderr));
    w.on('message', (m: unknown) => {
      if (!isToPrimary(m)) return;
      if (m.t === 'infergate:answer') {
        questions.get(m.id)?.(m.body);
        questions.delete(m.id);
      } else if (m.t === 'infergate:prefix') {
        relay(slot, m);
      } else {
        slot.started = true;
        if (slot.id === 0) firstStart?.('started');
      }
    });
    w.once('exit', (code: number | null, signal: string | null) => {
      if (slot.worker === w) slot.worker = undefined;
      slot.unsent = 0;
      if (!slot.started && firstStart !== undefined) {
        firstStart(code === null || code === 0 ? 1 : code);
        return;
      }
      if (stopping) return;
      const lived = performance.now() - slot.startedAt;
      slot.quickDeaths = lived < CRASH_WINDOW_MS ? slot.quickDeaths + 1 : 0;
      const delayMs = slot.quickDeaths === 0 ? 0 : Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (slot.quickDeaths - 1));
      logger.error({ worker: slot.id, pid: w.process.pid, code, signal, livedMs: Math.round(lived), restartInMs: delayMs }, 'worker exited unexpectedly; starting a new one');
      slot.timer = setTimeout(() => fork(slot), delayMs);
    });
  };

  // The admin port binds first, as in one process: a gateway that cannot report its health must not serve.
  let admin: AdminServer;
  try {
    admin = await startAdminServer(opts.adminAddress, opts.adminPort, {
      live: () => true,
      ready: async (): Promise<Readiness> => (stopping ? { ready: false, reason: 'shutting down' } : mergeReadiness((await askAll('ready')) as Array<WorkerAnswer<Readiness & Record<string, unknown>>>)),
      metrics: () => combinedMetrics(askAll),
      endpoints: async () => mergeDebug(await askAll('debug')),
    });
  } catch (err) {
    throw new ListenError('admin port', opts.adminAddress, opts.adminPort, err);
  }

  const drained = async (): Promise<void> => {
    await Promise.all(slots.map((s) => (s.worker === undefined ? undefined : new Promise((r) => s.worker?.once('exit', r)))));
    await Promise.all(outputs);
  };

  const first = await new Promise<number | 'started'>((resolve) => {
    firstStart = resolve;
    fork(slots[0] as Slot);
  });
  firstStart = undefined;
  if (first !== 'started') {
    stopping = true;
    await drained();
    await admin.close();
    return first;
  }
  for (const slot of slots.slice(1)) fork(slot);
  logger.info({ workers: opts.count, adminPort: admin.port }, 'workers started');

  const cause = await opts.untilStop();
  stopping = true;
  logger.info({ signal: cause, workers: slots.filter((s) => s.worker !== undefined).length }, 'shutting down: every worker drains');
  for (const s of slots) {
    clearTimeout(s.timer);
    s.worker?.send({ t: 'infergate:shutdown' } satisfies ToWorker);
  }
  const kill = setTimeout(() => {
    for (const s of slots) {
      if (s.worker === undefined) continue;
      logger.error({ worker: s.id, pid: s.worker.process.pid }, 'worker still running past the shutdown grace: killed');
      s.worker.process.kill('SIGKILL');
    }
  }, opts.shutdownGraceMs + SHUTDOWN_MARGIN_MS);
  kill.unref();
  await drained();
  clearTimeout(kill);
  clearTimeout(relayTimer);
  await admin.close();
  logger.info(relayDropped === 0 ? {} : { prefixRelayDropped: relayDropped }, 'gateway stopped');
  return 0;
}

/** `/metrics` for the gateway: every worker's series, combined by each series' aggregator (metrics.ts). */
function combinedMetrics(askAll: (what: Question) => Promise<Array<WorkerAnswer<unknown>>>): MetricsText {
  return {
    contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
    async metrics() {
      const answers = await askAll('metrics');
      const missing = answers.find((a) => a.body === undefined && a.missing !== undefined && !a.missing.startsWith('not running'));
      // A worker that did not answer would make every counter look reset: fail the scrape instead.
      if (missing !== undefined) throw new Error(`worker ${missing.worker} ${missing.missing}`);
      const arrays = answers.flatMap((a) => (Array.isArray(a.body) ? [a.body as object[]] : []));
      return AggregatorRegistry.aggregate(arrays).metrics();
    },
  };
}
