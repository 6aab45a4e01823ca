import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';

const BIN = fileURLToPath(new URL('../../../bin/infergate.js', import.meta.url));

// CI's end-to-end run of `npm run bench`: the smoke scenarios on two tiny simulated engines. It
// checks that the reports are produced and sane: every system measured, every request served,
// the prefix-cache hit rate read from the engines. Never a timing threshold.
test('bench-suite --smoke: every scenario reports every system, with sane numbers', async () => {
  const out = await mkdtemp(join(tmpdir(), 'infergate-suite-'));
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'bench-suite', '--smoke', '--out', out], { maxBuffer: 16 * 1024 * 1024 });
    const files = (await readdir(out)).sort();
    for (const f of ['suite.md', 'shared-prefix.json', 'shared-prefix.md', 'shared-prefix-ttft.svg', 'shared-prefix-throughput.svg', 'shared-prefix-endpoints.svg', 'overhead.json', 'overhead.md']) {
      assert.ok(files.includes(f), `${f} written (got ${files.join(', ')})`);
    }
    assert.match(stdout, /^# Infergate benchmark suite \(smoke\)/);

    const routing = JSON.parse(await readFile(join(out, 'shared-prefix.json'), 'utf8')) as {
      systems: Array<{ name: string; summary: { requests: number; ok: number; failed: number; outputTokens: number; prefixCache?: { hitRate?: number; servers: number } } }>;
    };
    const names = routing.systems.map((s) => s.name);
    for (const n of ['gateway random', 'gateway DEFAULT', 'gateway PREFIX_CACHE']) assert.ok(names.includes(n), `${n} measured`);
    for (const s of routing.systems) {
      assert.equal(s.summary.requests, 16, `${s.name}: one pass of 4 × 4`);
      assert.equal(s.summary.failed, 0, `${s.name}: no failures`);
      assert.equal(s.summary.outputTokens, 16 * 16, `${s.name}: exact output lengths`);
      assert.equal(s.summary.prefixCache?.servers, 2, `${s.name}: both engines' counters read`);
      const hit = s.summary.prefixCache?.hitRate ?? -1;
      assert.ok(hit > 0 && hit < 1, `${s.name}: hit rate ${hit}`);
    }
    const sweep = JSON.parse(await readFile(join(out, 'shared-prefix-sweep.json'), 'utf8')) as {
      systems: Array<{ name: string; points: Array<{ rate: number; requests: number; ok: number }>; goodput: Array<{ rate?: number }> }>;
    };
    assert.ok(sweep.systems.some((s) => s.name === 'gateway PREFIX_CACHE'));
    for (const s of sweep.systems) {
      assert.ok(s.points.length >= 1 && s.points[0]!.rate === 10, `${s.name}: stages measured`);
      assert.ok(s.points.every((p) => p.ok <= p.requests), `${s.name}: completions counted`);
      assert.equal(s.goodput.length, 2, `${s.name}: goodput per SLO`);
    }
    const sweepMd = await readFile(join(out, 'shared-prefix-sweep.md'), 'utf8');
    assert.match(sweepMd.split('\n')[2] ?? '', /^\*\*KV capacity\.\*\* /, 'the capacity statement comes first');
    assert.match(sweepMd, /\| system \| goodput \(TTFT p90 ≤ 2\.00 s, ITL p99 ≤ 100 ms\)/);
    for (const f of ['shared-prefix-sweep-ttft-p90.svg', 'shared-prefix-sweep-itl-p99.svg']) assert.ok(files.includes(f), `${f} written`);
    assert.match(stdout, /Smoke: a goodput sweep/);

    // The PD sweep: nginx over 4 plain SGLang engines, the gateway over 2 prefill + 2 decode ones.
    const pd = JSON.parse(await readFile(join(out, 'pd.json'), 'utf8')) as {
      systems: Array<{ name: string; points: Array<{ requests: number; ok: number; itlP50Ms?: number }>; records: Array<{ endpoint?: string; ok: boolean }> }>;
    };
    assert.deepEqual(pd.systems.map((s) => s.name), ['nginx round-robin', 'gateway PD (2 prefill + 2 decode)']);
    for (const s of pd.systems) {
      assert.ok(s.points.length === 1 && s.points[0]!.ok === s.points[0]!.requests && s.points[0]!.requests > 0, `${s.name}: every request served (${JSON.stringify(s.points)})`);
      // Measured, not large: on a busy machine tokens that arrive in one read have 0 ms between them.
      const itl = s.points[0]!.itlP50Ms;
      assert.ok(itl !== undefined && Number.isFinite(itl) && itl >= 0, `${s.name}: ITL p50 measured (${String(itl)})`);
    }
    const answered = new Set(pd.systems[1]!.records.map((r) => r.endpoint));
    assert.deepEqual([...answered].sort(), ['sim-2', 'sim-3'], 'under PD the decode servers answer');
    assert.equal(new Set(pd.systems[0]!.records.map((r) => r.endpoint)).size, 4, 'nginx spreads over all four engines');
    const pdMd = await readFile(join(out, 'pd.md'), 'utf8');
    assert.match(pdMd, /### Against nginx round-robin at the same rate/);
    for (const f of ['pd-ttft-p90.svg', 'pd-itl-p99.svg', 'pd-itl-p50.svg', 'pd-throughput.svg']) assert.ok(files.includes(f), `${f} written`);

    const overhead = JSON.parse(await readFile(join(out, 'overhead.json'), 'utf8')) as { rows: Array<{ system: string; requests: number; failed: number; cpuSecondsPer1000?: number }> };
    const gateway = overhead.rows.find((r) => r.system === 'gateway DEFAULT');
    assert.ok(gateway !== undefined && gateway.requests > 0 && gateway.failed === 0);
    assert.ok((gateway.cpuSecondsPer1000 ?? 0) > 0, 'the gateway CPU was measured');
    assert.ok(overhead.rows.some((r) => r.system === 'direct (no proxy)'));
    // The bare Node proxy is the floor the gateway's own CPU is read against.
    const floor = overhead.rows.find((r) => r.system === 'bare Node proxy (http + undici)');
    assert.ok(floor !== undefined && floor.requests > 0 && floor.failed === 0, `the bare Node proxy served every request (${JSON.stringify(floor)})`);
    assert.ok((floor.cpuSecondsPer1000 ?? 0) > 0, 'its CPU was measured');
    assert.match(await readFile(join(out, 'overhead.md'), 'utf8'), /\| gateway DEFAULT \|.*CPU vs bare Node \d+(\.\d+)?×/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
