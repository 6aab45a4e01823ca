import { describe, test } from 'node:test';
import { PLANE_KINDS, startPlane } from '../support/planes.js';
import { waitFor } from '../support/smart.js';
import { CASES } from './cases.js';

// One table of routing cases (cases.ts), two data planes: every case runs against the standalone
// proxy and against Envoy (the stand-in, with its routing) + one endpoint picker per pool.
for (const c of CASES) {
  describe(c.name, { timeout: 180_000 }, () => {
    for (const kind of PLANE_KINDS) {
      test(kind, async () => {
        const plane = await startPlane(kind, c.setup);
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
