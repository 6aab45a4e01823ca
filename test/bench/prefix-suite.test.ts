import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';

const BIN = fileURLToPath(new URL('../../../bin/infergate.js', import.meta.url));

interface PrefixJson {
  systems: Array<{ system: string; name: string; points: unknown[]; prefixCache?: { hitRate?: number; servers: number }; oracle?: { requests: number; queries: number; failedQueries: number } }>;
  prefixCache?: { rows: Array<{ name: string; hitRate?: number; gatewayHitRate?: number; bypassHitRate?: number }>; goals: string[] };
}

// The prefix-cache blind spots (issue 20) at the smoke size, without the precise system: two
// gateway replicas behind round-robin, and 30 % of the traffic bypassing the gateway, each
// against the oracle that asks every engine what it caches. Structure and sanity only (every
// row present, hit rates are shares, the oracle hits at least as often as round-robin), never speed.
test('bench-suite --smoke prefix-replicas and prefix-bypass: every row, hit rates against the oracle', async () => {
  const out = await mkdtemp(join(tmpdir(), 'infergate-prefix-suite-'));
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'bench-suite', '--smoke', '--only', 'prefix-replicas,prefix-bypass', '--skip', 'precise', '--out', out], {
      maxBuffer: 16 * 1024 * 1024,
    });
    const expected: Record<string, string[]> = {
      'prefix-replicas': ['round-robin', 'prefix', 'prefix-nohome', 'oracle'],
      'prefix-bypass': ['round-robin', 'prefix', 'oracle'],
    };
    for (const [name, systems] of Object.entries(expected)) {
      const json = JSON.parse(await readFile(join(out, `${name}.json`), 'utf8')) as PrefixJson;
      assert.deepEqual(json.systems.map((s) => s.system), systems, `${name}: every system measured`);
      for (const s of json.systems) {
        assert.ok(s.points.length >= 1, `${name} ${s.name}: stages measured`);
        assert.equal(s.prefixCache?.servers, 2, `${name} ${s.name}: both engines' counters read`);
        const hit = s.prefixCache?.hitRate;
        assert.ok(hit !== undefined && hit >= 0 && hit <= 1, `${name} ${s.name}: hit rate ${String(hit)} is a share`);
      }
      const rate = (id: string): number => json.systems.find((s) => s.system === id)?.prefixCache?.hitRate ?? Number.NaN;
      assert.ok(rate('oracle') >= rate('round-robin'), `${name}: the oracle (${rate('oracle')}) hits at least as often as round-robin (${rate('round-robin')})`);
      const oracle = json.systems.find((s) => s.system === 'oracle')?.oracle;
      assert.ok(oracle !== undefined && oracle.requests > 0 && oracle.queries === 2 * oracle.requests && oracle.failedQueries === 0, `${name}: the oracle asked both engines about every request (${JSON.stringify(oracle)})`);
      assert.equal(json.prefixCache?.rows.length, systems.length, `${name}: a prefix-cache row per system`);
      const md = await readFile(join(out, `${name}.md`), 'utf8');
      assert.match(md, /### Prefix cache against the oracle/);
    }
    // Bypass: hit rates for the gateway's share and the bypassing share, each a share.
    const bypass = JSON.parse(await readFile(join(out, 'prefix-bypass.json'), 'utf8')) as PrefixJson;
    for (const r of bypass.prefixCache?.rows ?? []) {
      for (const v of [r.gatewayHitRate, r.bypassHitRate]) assert.ok(v !== undefined && v >= 0 && v <= 1, `prefix-bypass ${r.name}: per-share hit rate ${String(v)}`);
    }
    assert.match(stdout, /Two gateway replicas behind round-robin/);
    assert.match(stdout, /30 % of the traffic bypasses the gateway/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
