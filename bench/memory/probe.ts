/**
 * Loaded into a gateway under measurement with `node --import dist/bench/memory/probe.js` (not
 * part of the gateway): samples `process.memoryUsage()` every 20 ms and keeps each field's peak,
 * written as one JSON object to the file named by MEM_PROBE_OUT every 200 ms and at exit. The
 * fields are bytes: rss, heapTotal, heapUsed, external, arrayBuffers (Node's own meanings); `spaces`
 * is V8's heap spaces (size and used, MiB) at the sample of highest RSS. The timer is unref'd, so
 * it keeps no process alive.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';

const out = process.env['MEM_PROBE_OUT'];
if (out !== undefined && out !== '') {
  const peak = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
  let last = process.memoryUsage();
  let spaces: Record<string, [number, number]> = {};
  const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;
  const sample = (): void => {
    last = process.memoryUsage();
    if (last.rss > peak.rss) spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, [mib(s.space_size), mib(s.space_used_size)]]));
    for (const k of Object.keys(peak) as Array<keyof typeof peak>) peak[k] = Math.max(peak[k], last[k]);
  };
  // Written whole, then renamed: a reader never sees half a file.
  const write = (): void => {
    writeFileSync(`${out}.tmp`, JSON.stringify({ peak, now: last, spaces }));
    renameSync(`${out}.tmp`, out);
  };
  let ticks = 0;
  const timer = setInterval(() => {
    sample();
    if (++ticks % 10 === 0) write();
  }, 20);
  timer.unref();
  process.on('exit', () => {
    sample();
    write();
  });
}
