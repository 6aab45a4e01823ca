import { percentile, sortedAscending } from './stats.js';

/*
 * The live progress line. On a terminal it is redrawn in place (`\r`, clear to end of line) at most
 * every 250 ms, so a 1,000 req/s run does not spend its time printing; when stderr is a file or a CI
 * log, a plain line is written every few seconds instead, because `\r` redraws would pile up there.
 */

/** Where progress goes: anything with `write`, and `isTTY` when it is a terminal. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** Options of {@link Progress}. */
export interface ProgressOptions {
  /** Default `process.stderr`. */
  readonly stream?: ProgressStream;
  /** Redraw period on a terminal. Default 250 ms. */
  readonly ttyIntervalMs?: number;
  /** Period of plain lines when not a terminal. Default 5,000 ms. */
  readonly plainIntervalMs?: number;
  /** Label at the start of the line. Default `bench`. */
  readonly label?: string;
}

/** Completions kept for the running p50 TTFT: recent enough to show a trend, small enough to sort. */
const WINDOW = 500;

/** Counts completions and draws the progress line. */
export class Progress {
  readonly #stream: ProgressStream;
  readonly #tty: boolean;
  readonly #interval: number;
  readonly #label: string;
  readonly #total: number | undefined;
  readonly #durationS: number | undefined;
  readonly #started: number;
  readonly #ttfts: number[] = [];
  #done = 0;
  #errors = 0;
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;

  /** `total` (requests) and `durationS` are shown when known; time starts now. */
  constructor(total: number | undefined, durationS: number | undefined, options: ProgressOptions = {}) {
    this.#stream = options.stream ?? process.stderr;
    this.#tty = this.#stream.isTTY === true;
    this.#interval = this.#tty ? (options.ttyIntervalMs ?? 250) : (options.plainIntervalMs ?? 5000);
    this.#label = options.label ?? 'bench';
    this.#total = total !== undefined && Number.isFinite(total) ? total : undefined;
    this.#durationS = durationS;
    this.#started = performance.now();
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), this.#interval);
    // Progress must never keep the process alive on its own.
    this.#timer.unref();
  }

  /** A request was sent. */
  sent(): void {
    this.#inFlight++;
    this.#dirty = true;
  }

  /** A request finished. */
  finished(ok: boolean, ttftMs: number | undefined): void {
    this.#inFlight--;
    this.#done++;
    if (!ok) this.#errors++;
    if (ttftMs !== undefined) {
      this.#ttfts.push(ttftMs);
      if (this.#ttfts.length > WINDOW) this.#ttfts.shift();
    }
    this.#dirty = true;
  }

  /** The current line, without control characters. */
  line(): string {
    const elapsed = (performance.now() - this.#started) / 1000;
    const rate = elapsed > 0 ? this.#done / elapsed : 0;
    const p50 = percentile(sortedAscending(this.#ttfts), 50);
    const parts = [
      `${this.#done}${this.#total === undefined ? '' : `/${this.#total}`} done`,
      `${rate.toFixed(1)} req/s`,
      `${this.#errors} error${this.#errors === 1 ? '' : 's'}`,
      `p50 TTFT ${p50 === undefined ? '–' : `${p50.toFixed(0)} ms`}`,
      `${this.#inFlight} in flight`,
      `${elapsed.toFixed(0)}${this.#durationS === undefined ? '' : `/${this.#durationS}`} s`,
    ];
    return `[${this.#label}] ${parts.join(' · ')}`;
  }

  #tick(): void {
    if (!this.#dirty && this.#tty) return;
    this.#dirty = false;
    this.#stream.write(this.#tty ? `\r${this.line()}\x1b[K` : `${this.line()}\n`);
  }

  /** Stops the timer and writes the final line (ending the redrawn line on a terminal). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#stream.write(this.#tty ? `\r${this.line()}\x1b[K\n` : `${this.line()}\n`);
  }
}
