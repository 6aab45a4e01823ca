/**
 * How the workers of `infergate serve --workers N` scrape the model servers: each worker scrapes
 * every endpoint itself, at N times the interval, so a server is scraped at the configured
 * interval overall (20 times a second by default) whatever N is, as by one process. Each
 * worker's first scrape of an endpoint falls at a random point of its longer interval
 * (scraper.ts), so the N workers' scrapes spread over it rather than arriving together.
 *
 * Why not one scraper sharing its snapshots: every worker keeps judging health from its own
 * scrapes, no worker depends on another being alive, and nothing crosses the IPC channel per
 * scrape. The price: each worker's copy of a server's queue is up to N × interval old (100 ms
 * with 2 workers, 400 ms with 8 at the default 50 ms), and between its scrapes a worker adds
 * only its own dispatches to it. `--scrape-interval` lowers both (the servers then see more
 * scrapes per second); docs/configuration.md, "Workers".
 *
 * Metrics older than the staleness bound are not trusted; its default follows the worker's own
 * interval (max(200 ms, 4 intervals), as for one process), or a value given is kept.
 */
export function workerScrape(count: number, intervalMs: number, stalenessMs: number | undefined): { scrapeIntervalMs: number; stalenessMs: number | undefined } {
  if (intervalMs <= 0) return { scrapeIntervalMs: intervalMs, stalenessMs };
  const perWorker = intervalMs * Math.max(1, count);
  return { scrapeIntervalMs: perWorker, stalenessMs: stalenessMs ?? Math.max(200, 4 * perWorker) };
}
