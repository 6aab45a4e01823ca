/**
 * The series a Python model server's `/metrics` page carries besides the engine's: the default
 * collectors of prometheus_client (`python_gc_*`, `python_info`, `process_*`) and the request
 * counter of prometheus-fastapi-instrumentator, which vLLM's API server mounts on the same
 * registry (vllm-project/vllm: vllm/entrypoints/serve/instrumentator/metrics.py). They are what
 * remains of a vLLM V1 page under `--disable-log-stats` (docs/simulator.md "Faults").
 *
 * Values are those of this Node process where one exists (resident memory, CPU time, open
 * handles are not known and stay fixed); the garbage-collector counts are fixed, plausible numbers.
 */
import { header, labels, pyFloat } from './format.js';

/** Handlers the instrumentator leaves out in vLLM (the `excluded_handlers` list of that file). */
const EXCLUDED_HANDLERS: ReadonlySet<string> = new Set(['/metrics', '/health', '/health/decode', '/load', '/ping', '/version', '/server_info']);

/** Labels are kept for at most this many distinct (method, status, handler) triples. */
const MAX_SERIES = 256;

/**
 * `http_requests_total{method, status, handler}` as prometheus-fastapi-instrumentator counts:
 * statuses grouped (`2xx`, `4xx`), a route outside the app's templates counted as handler `none`.
 */
export class HttpRequestCounts {
  readonly #counts = new Map<string, number>();

  /** Records one finished response. `handler` is the route template, or undefined for an unknown path. */
  record(method: string, status: number, handler: string | undefined): void {
    if (handler !== undefined && EXCLUDED_HANDLERS.has(handler)) return;
    const key = labels([
      ['method', method],
      ['status', `${Math.floor(status / 100)}xx`],
      ['handler', handler ?? 'none'],
    ]);
    const n = this.#counts.get(key);
    if (n === undefined && this.#counts.size >= MAX_SERIES) return;
    this.#counts.set(key, (n ?? 0) + 1);
  }

  render(): string {
    if (this.#counts.size === 0) return '';
    let out = header('http_requests_total', 'counter', 'Total number of requests by method, status and handler.');
    for (const [k, v] of this.#counts) out += `http_requests_total{${k}} ${pyFloat(v)}\n`;
    return out;
  }
}

/** prometheus_client's platform, GC and process collectors, for a process started at `startEpochMs`. */
export function pythonProcessSeries(startEpochMs: number): string {
  const gc = (name: string, help: string, values: readonly number[]): string =>
    header(name, 'counter', help) + values.map((v, i) => `${name}{generation="${i}"} ${pyFloat(v)}\n`).join('');
  const one = (name: string, type: 'gauge' | 'counter', help: string, v: number): string => `${header(name, type, help)}${name} ${pyFloat(v)}\n`;
  const cpu = process.cpuUsage();
  let out = gc('python_gc_objects_collected_total', 'Objects collected during gc', [18_562, 2_437, 806]);
  out += gc('python_gc_objects_uncollectable_total', 'Uncollectable objects found during GC', [0, 0, 0]);
  out += gc('python_gc_collections_total', 'Number of times this generation was collected', [1_214, 110, 9]);
  out += header('python_info', 'gauge', 'Python platform information');
  out += 'python_info{implementation="CPython",major="3",minor="12",patchlevel="11",version="3.12.11"} 1.0\n';
  out += one('process_virtual_memory_bytes', 'gauge', 'Virtual memory size in bytes.', 12_884_901_888);
  out += one('process_resident_memory_bytes', 'gauge', 'Resident memory size in bytes.', process.memoryUsage().rss);
  out += one('process_start_time_seconds', 'gauge', 'Start time of the process since unix epoch in seconds.', Math.round(startEpochMs / 10) / 100);
  out += one('process_cpu_seconds_total', 'counter', 'Total user and system CPU time spent in seconds.', Math.round((cpu.user + cpu.system) / 1e4) / 100);
  out += one('process_open_fds', 'gauge', 'Number of open file descriptors.', 64);
  out += one('process_max_fds', 'gauge', 'Maximum number of open file descriptors.', 1_048_576);
  return out;
}
