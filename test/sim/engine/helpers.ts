/** Shared helpers of the engine tests (not a test file itself). */
import { Engine, type EngineOptions } from '../../../src/sim/engine/engine.js';
import { SimClock } from '../../../src/sim/engine/clock.js';
import { PROFILES } from '../../../src/sim/engine/profiles.js';
import type { EngineRequest, RequestResult } from '../../../src/sim/engine/request.js';

/**
 * The simulator's timers are unref'd (they never keep a process alive), so a test awaiting them
 * needs something that does. Returns the release function.
 */
export function keepAlive(): () => void {
  const t = setInterval(() => {}, 60_000);
  return () => clearInterval(t);
}

/**
 * A clock + engine on the tiny profile, fast (timeScale 200) unless told otherwise. `'virtual'`:
 * a discrete-event clock that never reads the wall clock, for tests whose arithmetic must be exact
 * however busy the machine is (a huge time scale is not: a millisecond of CPU contention there is
 * many modelled seconds).
 */
export function tinyEngine(
  options: Partial<Omit<EngineOptions, 'clock'>> = {},
  timeScale: number | 'virtual' = 200,
): { clock: SimClock; engine: Engine; done: () => void } {
  const clock = new SimClock(timeScale === 'virtual' ? { virtual: true, epochMs: 1_700_000_000_000 } : { timeScale, epochMs: 1_700_000_000_000 });
  const engine = new Engine({ model: 'tiny-model', profile: PROFILES.tiny, clock, ...options });
  const release = keepAlive();
  return {
    clock,
    engine,
    done: () => {
      engine.close();
      clock.close();
      release();
    },
  };
}

/** What one request produced. */
export interface Outcome {
  result: RequestResult;
  texts: string[];
  indexes: number[];
}

/** Submits `req` now and resolves when it finishes. `onToken` sees each token first. */
export function run(engine: Engine, req: EngineRequest, onToken?: (text: string, index: number) => void): Promise<Outcome> {
  return new Promise((resolve) => {
    const texts: string[] = [];
    const indexes: number[] = [];
    engine.submit(req, {
      onToken(text, index) {
        texts.push(text);
        indexes.push(index);
        onToken?.(text, index);
      },
      onFinish(result) {
        resolve({ result, texts, indexes });
      },
    });
  });
}

/**
 * Runs `fn` inside a clock callback `delayMs` modelled ms from now. Inside the callback (and in
 * the continuations of promises it resolves) "now" is exact, so arrivals are deterministic; call
 * it from such a point (or at the start of a test, to fix the base time).
 */
export function later<T>(clock: SimClock, delayMs: number, fn: () => T): Promise<Awaited<T>> {
  return new Promise((resolve, reject) =>
    clock.setTimeout(() => {
      try {
        Promise.resolve(fn()).then(resolve, reject);
      } catch (err) {
        reject(err);
      }
    }, delayMs),
  );
}

/** `later(clock, 0, fn)`. */
export function inClock<T>(clock: SimClock, fn: () => T): Promise<Awaited<T>> {
  return later(clock, 0, fn);
}

/** English-ish filler text of about `words` words, deterministic per `seed`. */
export function filler(words: number, seed = 1): string {
  const vocab = ['alpha', 'model', 'server', 'cache', 'prefix', 'token', 'route', 'gateway', 'batch', 'queue', 'latency', 'decode', 'prefill', 'the', 'of', 'and', 'is', 'a', 'to', 'in'];
  let s = seed >>> 0;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push(vocab[(s >>> 16) % vocab.length]!);
  }
  return out.join(' ');
}

/** Length of the common prefix of two arrays. */
export function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
