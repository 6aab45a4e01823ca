import { describe, test } from 'node:test';
import { startPlane, type PlaneKind, type PlaneOptions } from '../support/planes.js';
import { waitFor } from '../support/smart.js';
import { CASES } from './cases.js';

// One table of routing cases (cases.ts), two data planes: every case runs against the standalone
// proxy and against Envoy (the stand-in, with its routing) + one endpoint picker per pool, in both
// body modes Envoy is configured with (FULL_DUPLEX_STREAMED, which upstream requires; BUFFERED,
// which some gateways configure).
const PLANES: ReadonlyArray<{ readonly name: string; readonly kind: PlaneKind; readonly options?: PlaneOptions }> = [
  { name: 'proxy', kind: 'proxy' },
  { name: 'epp', kind: 'epp' },
  { name: 'epp (BUFFERED)', kind: 'epp', options: { bodyMode: 'BUFFERED' } },
];
for (const c of CASES) {
  describe(c.name, () => {
    for (const p of PLANES) {
      // Bounds a hang; not a speed the machine must reach.
      test(p.name, { timeout: 300_000 }, async () => {
        const plane = await startPlane(p.kind, c.setup, p.options);
        try {
          await c.run(plane);
          // Whatever the case did, the core's per-request state is released in both planes.
          await waitFor('in-flight back to zero', async () => (await plane.debugPools()).every((p) => p.endpoints.every((e) => e.inFlight === 0)));
        } finally {
          await plane.close();
        }
      });
    }
  });
}
