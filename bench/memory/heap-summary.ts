/**
 * A V8 heap snapshot (`.heapsnapshot`, from `node --heapsnapshot-signal` or
 * `v8.writeHeapSnapshot`) summarised by constructor: count and self size per node name, largest
 * first, and the totals per node type (object, string, code, closure, array, …). Self size only
 * (what the object itself holds, not what it keeps alive).
 *
 *   node dist/bench/memory/heap-summary.js FILE.heapsnapshot [TOP=30]
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const [file, topArg] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node dist/bench/memory/heap-summary.js FILE.heapsnapshot [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 30);
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0];
const stride = fields.length;
const iType = fields.indexOf('type');
const iName = fields.indexOf('name');
const iSize = fields.indexOf('self_size');

const byName = new Map<string, { count: number; bytes: number }>();
const byType = new Map<string, { count: number; bytes: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += stride) {
  const type = types[snap.nodes[i + iType]!]!;
  const size = snap.nodes[i + iSize]!;
  // Strings and code are grouped by type (their "names" are their contents).
  const name = type === 'object' || type === 'closure' || type === 'native' ? `${type}:${snap.strings[snap.nodes[i + iName]!]}` : `(${type})`;
  const n = byName.get(name) ?? { count: 0, bytes: 0 };
  n.count++;
  n.bytes += size;
  byName.set(name, n);
  const t = byType.get(type) ?? { count: 0, bytes: 0 };
  t.count++;
  t.bytes += size;
  byType.set(type, t);
  total += size;
}
const mib = (b: number): string => (b / 2 ** 20).toFixed(2).padStart(8);
process.stdout.write(`total self size ${mib(total)} MiB\n\nby type:\n`);
for (const [t, v] of [...byType].sort((a, b) => b[1].bytes - a[1].bytes)) process.stdout.write(`${mib(v.bytes)} MiB ${String(v.count).padStart(9)}  ${t}\n`);
process.stdout.write(`\nby constructor (top ${top}):\n`);
for (const [n, v] of [...byName].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) process.stdout.write(`${mib(v.bytes)} MiB ${String(v.count).padStart(9)}  ${n}\n`);
