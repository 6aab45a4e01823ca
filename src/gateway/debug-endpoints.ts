import type { Runtime } from './runtime.js';
import type { PrefixIndex } from '../prefix/index.js';
import type { PluginHandle } from '../scheduling/types.js';
import type { PrecisePrefix } from './precise-prefix.js';

/**
 * `GET /debug/endpoints` (admin port): every pool with its policy and queue, and every endpoint as
 * the scheduler sees it now: the last scrape and its age, the gateway's own in-flight accounting,
 * the estimates scoring uses, health, and the prefix index's size for it.
 */
export function debugEndpoints(runtime: Runtime, prefixIndex: PrefixIndex, handle: PluginHandle, precise?: PrecisePrefix): unknown {
  const now = handle.now();
  return {
    version: runtime.snapshot.version,
    prefixIndex: { entries: prefixIndex.size, hitRatio: round(prefixIndex.hitRatio), lookups: prefixIndex.lookups },
    pools: [...runtime.pools.values()].map((p) => ({
      pool: p.config.key,
      runtime: p.config.runtime,
      policy: p.policy,
      profile: p.scheduler.describe(),
      // estimate or precise, and a precise pool's tokenizers (a failed or loading one: its requests are judged in estimate mode).
      prefixCache: precise?.modeOf(p) ?? { mode: 'estimate' },
      saturated: p.gate.saturated(),
      shedding: p.gate.shedding(),
      queued: { Critical: p.gate.sizeOf('Critical'), Standard: p.gate.sizeOf('Standard'), Sheddable: p.gate.sizeOf('Sheddable') },
      endpoints: p.members.endpoints.map((e) => {
        const age = e.metricsAgeMs(now);
        return {
          name: e.name,
          pod: e.podName,
          address: e.key,
          dialect: e.dialect,
          dialectKnown: e.dialectKnown(),
          role: e.role,
          // Routable now: scrapes answer (`healthy`) and passive health has not ejected it (`ejectedForMs`).
          available: e.ready(now),
          healthy: e.healthy,
          ejectedForMs: e.ejectedUntil > now ? Math.round(e.ejectedUntil - now) : 0,
          consecutiveFailures: e.consecutiveFailures,
          // Backed off by passive health (a 429, or far more failures than its peers): scheduled only when no other is free.
          backoffForMs: e.backoffUntil > now ? Math.round(e.backoffUntil - now) : 0,
          errorShare: round(e.errorShare),
          lastScrapeError: e.lastScrapeError,
          metricsAgeMs: Number.isFinite(age) ? Math.round(age) : null,
          stale: Number.isFinite(age) ? age > handle.stalenessMs : null,
          metrics: e.metrics ?? null,
          inFlight: e.inFlight,
          inFlightTokens: e.inFlightTokens,
          pendingPrefillTokens: e.pendingPrefillTokens,
          inFlightByModel: Object.fromEntries(e.inFlightByModel),
          estimatedWaiting: e.estimatedWaiting(),
          estimatedKvUsage: round(e.estimatedKvUsage()),
          prefixIndexEntries: prefixIndex.entriesOf(e),
          prefixIndexCapacity: prefixIndex.capacityOf(e),
          // Precise pools: the endpoint's KV-event subscription and the blocks its events put in the index.
          kvEvents: precise?.endpointState(e) ?? null,
        };
      }),
    })),
  };
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
