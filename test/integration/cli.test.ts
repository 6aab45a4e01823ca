import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { configDir, gatewayYaml } from '../support/config.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess } from '../support/gateway-process.js';
import { validatePaths } from '../../src/cli/validate-command.js';
import { BIN, cli } from '../support/cli.js';
import { waitFor } from '../support/smart.js';
import { freePort } from '../support/ports.js';

const SEEDS = fileURLToPath(new URL('../../../test/fixtures/seeds/', import.meta.url));
const run = promisify(execFile);
const EXAMPLES = fileURLToPath(new URL('../../../examples/canary/', import.meta.url));

describe('infergate command line', { timeout: 120_000 }, () => {
  test('--help lists the commands', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['serve', 'validate', 'demo', 'sim']) assert.match(r.stdout, new RegExp(`\\n  ${c} `));
  });

  test('validate: every seed block and the examples are valid, one summary line per resource', async () => {
    // The seed's variants reuse resource names, so each block is validated as its own config.
    const seeds = (await readdir(SEEDS)).filter((f) => f.endsWith('.yaml')).map((f) => join(SEEDS, f));
    assert.ok(seeds.length >= 18, `seed fixtures present (${seeds.length})`);
    // The blocks go through the code the command runs, in this process (a process per block
    // took most of a minute on a busy machine); the command itself runs once, on the examples.
    for (const path of seeds) {
      const out = { stdout: [] as string[], stderr: [] as string[] };
      const code = await validatePaths([path], { stdout: (l) => out.stdout.push(l), stderr: (l) => out.stderr.push(l) });
      assert.equal(code, 0, `${path}: ${out.stderr.join('\n')}`);
      assert.match(out.stdout.at(-1) ?? '', /resource\(s\) valid/);
    }
    const ex = await cli(['validate', '-f', EXAMPLES]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, /resource\(s\) valid/);
    assert.match(ex.stdout, /^InferenceModel\/loramodel\b.*travel-helper-v1/m);
    // Seed 003's LoRA canary: the 90/10 route, travelhelper in pool v1 only. Valid, and said.
    assert.match(ex.stderr, /^warning: HTTPRoute\/inference-route: spec\.rules\[0\]: model travelhelper is served by mymodel-pool-v1 only; requests for it go there \(weights apply among the pools that serve it\) \(\S+\/examples\/canary\/route\.yaml, line \d+\)$/m);
  });

  test('validate: a prefill/decode pool is described as served, and role mistakes in its Pods are warnings', async () => {
    const pd = fileURLToPath(new URL('../../../examples/pd/', import.meta.url));
    const files = await Promise.all(['gateway.yaml', 'pool.yaml', 'pods.yaml'].map((f) => readFile(join(pd, f), 'utf8')));
    const run = async (pods: string): Promise<{ code: number; stdout: string; stderr: string }> => {
      const out = { stdout: [] as string[], stderr: [] as string[] };
      const cfg = await configDir([files[0], files[1], pods].join('\n---\n'));
      try {
        const code = await validatePaths([cfg.file], { stdout: (l) => out.stdout.push(l), stderr: (l) => out.stderr.push(l) });
        return { code, stdout: out.stdout.join('\n'), stderr: out.stderr.join('\n') };
      } finally {
        await cfg.remove();
      }
    };
    const good = await run(files[2] as string);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /^InferencePool\/qwen-inference-pool as served: runtime sglang, .*: 2 prefill, 2 decode pod\(s\)$/m);
    assert.equal(good.stderr, '');
    // A mistyped role value, and a pod without the label.
    const bad = await run((files[2] as string).replace(/role: decode\}/g, 'role: decoder}').replace('rolebasedgroup.workloads.x-k8s.io/role: prefill}', 'x: y}'));
    assert.equal(bad.code, 0, 'warnings, not errors: serve would still start');
    assert.match(bad.stderr, /^warning: Pod\/qwen-decode-0: metadata\.labels\["rolebasedgroup\.workloads\.x-k8s\.io\/role"\]: "decoder" is not a role.* \(\S+\/config\.yaml, line \d+\)$/m);
    assert.match(bad.stderr, /^warning: Pod\/qwen-prefill-0: metadata\.labels\["rolebasedgroup\.workloads\.x-k8s\.io\/role"\]: missing/m);
    assert.match(bad.stderr, /^warning: InferencePool\/qwen-inference-pool: pods: no selected Pod here has role decode .*503/m);
  });

  test('validate: problems are printed as Kind/name: field.path: reason, exit 1', async () => {
    const cfg = await configDir(`apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: bad-model}
spec:
  modelName: m
  poolRef: {name: p}
  targetModels:
  - {name: a, weight: 10}
  - {name: b}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: bad-pool}
spec:
  selector: {app: x}
  targetPortNumber: 70000
`);
    try {
      const r = await cli(['validate', '-f', cfg.file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^InferenceModel\/bad-model: spec\.targetModels: Weights should be set for all models, or none of the models\. \(\S+\/config\.yaml, line \d+\)$/m);
      assert.match(r.stderr, /^InferencePool\/bad-pool: spec\.targetPortNumber: .+$/m);
    } finally {
      await cfg.remove();
    }
  });

  test('validate is strict where kubectl is: a misspelt field is an error with the field meant; a selector that matches no Pod is a warning', async () => {
    const canary = fileURLToPath(new URL('../../../examples/canary/', import.meta.url));
    const route = await readFile(join(canary, 'route.yaml'), 'utf8');
    assert.match(route, /weight: 90/);
    const run = async (text: string): Promise<{ code: number; stdout: string; stderr: string }> => {
      const out = { stdout: [] as string[], stderr: [] as string[] };
      const cfg = await configDir(text);
      try {
        const code = await validatePaths([cfg.file], { stdout: (l) => out.stdout.push(l), stderr: (l) => out.stderr.push(l) });
        return { code, stdout: out.stdout.join('\n'), stderr: out.stderr.join('\n') };
      } finally {
        await cfg.remove();
      }
    };
    // The canary's 90 % weight misspelt: kubectl refuses it, and so do we (it would otherwise fall
    // back to 1 and send 91 % of the traffic to the canary).
    const typo = await run(route.replace('weight: 90', 'wieght: 90'));
    assert.equal(typo.code, 1);
    // Located at the misspelt field's own line, not the document's first.
    const typoLine = route.split('\n').findIndex((l) => l.includes('weight: 90')) + 1;
    assert.match(typo.stderr, new RegExp(`^HTTPRoute/\\S+: spec\\.rules\\[0\\]\\.backendRefs\\[0\\]\\.wieght: unknown field; did you mean "weight"\\? \\(\\S+/config\\.yaml, line ${typoLine}\\)$`, 'm'));
    const pool = `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: p}
spec:
  selector: {app: qwen-infernce}
  targetPortNumber: 8000
  extensionRef: {name: e}
---
apiVersion: v1
kind: Pod
metadata: {name: qwen-0, labels: {app: qwen-inference}}
status: {podIP: 127.0.0.2}
`;
    const empty = await run(pool);
    assert.equal(empty.code, 0, 'a warning: the pods may come later');
    assert.match(empty.stderr, /^warning: InferencePool\/p: spec\.selector: matches no Pod in these files \(app=qwen-infernce\); no Pod has app=qwen-infernce; did you mean "qwen-inference"\?: served as is, every request to it gets 503 \(\S+\/config\.yaml, line 5\)$/m);
    const key = await run(pool.replace('{app: qwen-infernce}', '{aap: qwen-inference}'));
    assert.match(key.stderr, /\(aap=qwen-inference\); no Pod has label aap; did you mean "app"\?: served as is/m);
    const fixed = await run(pool.replace('qwen-infernce', 'qwen-inference'));
    assert.equal(fixed.stderr, '');
  });

  test('serve started in the background from a script keeps serving after the script ends; flags that do not apply are refused', async () => {
    const [listener, admin] = [await freePort(), await freePort()];
    const cfg = await configDir(gatewayYaml(listener));
    let pid: number | undefined;
    try {
      // `nohup infergate serve … &` from a script: the shell that started it exits at once.
      const started = await run('sh', ['-c', `nohup "${process.execPath}" "${BIN}" serve -f "${cfg.file}" --address 127.0.0.1 --admin-port ${admin} --log-level silent >/dev/null 2>&1 & echo $!`]);
      pid = Number(started.stdout.trim());
      const ready = async (): Promise<boolean> => (await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => undefined))?.ok === true;
      await waitFor('the gateway became ready', ready);
      // Several of the parent checks (every 500 ms) have run since its parent exited.
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal(await ready(), true, 'still serving after its parent exited');
      const both = await cli(['serve', '-f', cfg.file, '--port', '8081']);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /^infergate serve: --port goes with --backend; with -f the Gateway resources give the listeners/);
      const print = await cli(['serve', '-f', cfg.file, '--print-config']);
      assert.equal(print.code, 2);
      assert.match(print.stderr, /--print-config goes with --backend/);
    } finally {
      if (pid !== undefined && pid > 0) process.kill(pid, 'SIGTERM');
      await cfg.remove();
    }
  });

  test('serve refuses to start on an invalid config and says why', async () => {
    const cfg = await configDir('apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: x\n  listeners:\n  - {name: l, protocol: HTTP, port: 0}\n');
    try {
      const r = await cli(['serve', '-f', cfg.file, '--admin-port', '0', '--log-level', 'silent']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Gateway\/g: spec\.listeners\[0\]\.port: /);
    } finally {
      await cfg.remove();
    }
  });

  test('serve --backend: one pool over the given servers, model passed through', async () => {
    const fleet = await startFleet([
      { host: '127.0.0.41', name: 'b-0' },
      { host: '127.0.0.42', name: 'b-1' },
    ]);
    const port = await freePort();
    const gw = await startGatewayProcess(['--backend', `http://127.0.0.41:${fleet.port}`, '--backend', `http://127.0.0.42:${fleet.port}`, '--port', String(port)]);
    try {
      const pods = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'mymodel', prompt: 'hi', max_tokens: 1 }),
        });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-sim-model'), 'mymodel');
        pods.add(r.headers.get('x-sim-pod') ?? '');
        await r.arrayBuffer();
      }
      assert.deepEqual([...pods].sort(), ['b-0', 'b-1']);
    } finally {
      await gw.stop();
      await fleet.close();
    }
  });
});
