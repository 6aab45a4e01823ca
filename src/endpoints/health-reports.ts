/*
 * How often an endpoint's health changes are reported (logged). A server whose /metrics page fails
 * every other scrape flips between healthy and unhealthy every few scrapes: reported one line per
 * flip, two endpoints wrote 100 lines in 25 s. Each endpoint gets a few reports a minute; the
 * changes past them are counted, and the next report (a change, or the first scrape once the
 * minute has room) says the state then, with how many changes went unreported. The first change
 * of a real outage and its recovery are reported at once unless the endpoint flapped just before.
 */

/** Health reports allowed per endpoint per minute (a down and an up are two). */
export const HEALTH_REPORTS_PER_MINUTE = 4;
const WINDOW_MS = 60_000;

/** One endpoint's report history: when its last reports went out, and the changes held since. */
export class HealthReports {
  #times: number[] = [];
  #unreported = 0;

  /**
   * Called after a scrape with whether it changed the endpoint's health (or whenever changes are
   * held). Returns undefined to stay quiet, or, when the state now is to be reported, how many
   * earlier changes were not.
   */
  observe(changed: boolean, nowMs: number): number | undefined {
    if (changed) this.#unreported++;
    if (this.#unreported === 0) return undefined;
    if (this.#times.length >= HEALTH_REPORTS_PER_MINUTE) {
      this.#times = this.#times.filter((t) => nowMs - t < WINDOW_MS);
      if (this.#times.length >= HEALTH_REPORTS_PER_MINUTE) return undefined;
    }
    this.#times.push(nowMs);
    const before = this.#unreported - (changed ? 1 : 0);
    this.#unreported = 0;
    return before;
  }

  /** Changes not reported yet. */
  get held(): number {
    return this.#unreported;
  }
}
