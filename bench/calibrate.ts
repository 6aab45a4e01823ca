/**
 * Prints the simulator's calibration table (docs/simulator.md, "Calibration"): every published
 * measurement, the simulator's value for the same experiment in modelled time, the ratio and its
 * tolerance. Exits 1 when a point is out of tolerance.
 *
 *     npm run build && node dist/bench/calibrate.js
 */
import { calibrationMarkdown, measureCalibration } from '../src/sim/engine/calibration.js';

const rows = await measureCalibration();
process.stdout.write(calibrationMarkdown(rows));
const out = rows.filter((r) => !r.withinTolerance);
if (out.length > 0) {
  process.stderr.write(`out of tolerance: ${out.map((r) => r.point.id).join(', ')}\n`);
  process.exitCode = 1;
}
