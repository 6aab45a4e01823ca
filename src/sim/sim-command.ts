import { rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { untilSignal } from '../cli/signals.js';
import { PROFILES, type EngineProfileOverrides, type ProfileName } from './engine/index.js';
import { startSimFleet, type SimFleet } from './fleet.js';
import { DEFAULT_EMBEDDING_DIMENSION, MAX_EMBEDDING_DIMENSION } from './embeddings.js';
import { GENERATION_FAULT_MODES, generationFaultHelp, isMetricsFault, METRICS_FAULTS, parseGenerationFault, type GenerationFaultMode } from './faults.js';
import { KV_EVENTS_HELP, kvEventsFromFlags } from './kv-events/flags.js';
import { RDMA_GBPS_PER_GPU } from './kv-link.js';
import { DEFAULT_KV_ABORT_TIMEOUT_MS, DEFAULT_SIDE_CHANNEL_PORT } from './nixl.js';
import type { PdRole } from './pd-leg.js';
import { DEFAULT_BOOTSTRAP_PORT, DEFAULT_BOOTSTRAP_TIMEOUT_MS } from './pd.js';
import { isSimRuntime, SIM_RUNTIMES } from './runtimes.js';
import { parseTritonVersion } from './triton-version.js';
import { TokenizerLoadError } from '../tokens/index.js';

export const SIM_HELP = `infergate sim: simulated model servers (vLLM, SGLang, Triton TensorRT-LLM) for the gateway

Each replica is an engine in modelled time (continuous batching, paged prefix-cached KV cache,
preemption, LoRA slots) behind the runtime's real HTTP face: OpenAI routes and SSE, error bodies,
health routes and the runtime's /metrics names. See docs/simulator.md.

Usage: infergate sim [options]

Options:
  --runtime R          ${SIM_RUNTIMES.join(' | ')} (default vllm: vLLM V1)
  --host ADDR          first address (default 127.0.0.2); replicas take the next ones
  --port N             port of every replica (default 8000)
  --port-step N        replicas on one host, ports N apart, instead of consecutive hosts
  --replicas N         number of engines in this process (default 1), pods <prefix>-0, -1, …
  --name-prefix P      pod name prefix (default sim)
  --model NAME[,NAME]  served model name(s) (default mymodel; vLLM --served-model-name)
  --model-path PATH    the model the servers stand for, as a real server is started with it
                       (vLLM's positional model, SGLang --model-path), e.g.
                       /models/Qwen-2.5-7B-Instruct: answers start "I am Qwen-2.5-7B-Instruct."
                       (" + LoRA <adapter>" when an adapter serves) and vLLM's /v1/models lists
                       it as the served names' root (default: none; answers start "<model>:")
  --tokenizer DIR      the model's tokenizer.json and tokenizer_config.json: prompts are
                       tokenised with them and the model's chat template, as a vLLM pod does
                       (KV blocks carry real token ids; ~1 µs per new prompt character on a
                       worker thread; default: a stand-in tokenizer and ChatML template)
  --lora A,B           LoRA adapters served beside the model (vLLM --lora-modules)
  --max-loras N        GPU adapter slots (default 1)
  --allow-runtime-lora-updating
                       serve /v1/load_lora_adapter and /v1/unload_lora_adapter (vLLM; also
                       enabled by VLLM_ALLOW_RUNTIME_LORA_UPDATING=True)
  --profile NAME       ${Object.keys(PROFILES).join(' | ')} (default llama-3.1-8b-h100)
  --num-gpu-blocks N, --max-model-len N, --max-num-seqs N, --max-num-batched-tokens N
                       override the profile
  --time-scale X       modelled time runs X times faster than real time (default 1)
  --pd-role ROLE[,ROLE]
                       prefill | decode: prefill/decode disaggregation, SGLang's (runtime sglang,
                       the bootstrap handshake) or vLLM NixlConnector's (runtime vllm); a list
                       gives one role per replica (e.g. prefill,prefill,decode,decode)
  --pd-role-label K    write each replica's role into the Pods as label K (e.g.
                       rolebasedgroup.workloads.x-k8s.io/role)
  --bootstrap-port N   SGLang prefill: bootstrap listener port on its host (default ${DEFAULT_BOOTSTRAP_PORT})
  --bootstrap-timeout-ms N
                       SGLang: modelled ms a PD leg waits for its partner (default ${DEFAULT_BOOTSTRAP_TIMEOUT_MS})
  --side-channel-port N
                       vLLM prefill: NIXL side channel port on its host (default ${DEFAULT_SIDE_CHANNEL_PORT})
  --kv-abort-timeout-ms N
                       vLLM: modelled ms a prefill keeps KV nobody reads, and a decode waits for it
                       (default ${DEFAULT_KV_ABORT_TIMEOUT_MS}, VLLM_NIXL_ABORT_REQUEST_TIMEOUT)
  --kv-link-gbps X     prefill: speed of the link the KV goes out on, Gb/s; a transfer takes prompt
                       tokens x the profile's KV bytes per token over it (default ${RDMA_GBPS_PER_GPU} per GPU
                       of the profile: one RDMA NIC each)
  --kv-transfer-ms-per-token X
                       prefill: a fixed modelled KV transfer cost per prompt token instead
${KV_EVENTS_HELP}  --embedding-dim N    length of /v1/embeddings vectors (default ${DEFAULT_EMBEDDING_DIMENSION})
  --triton-version V   Triton server version 2.N (runtime trtllm): before 2.60 stream_options is
                       refused with 422, 2.60-2.62 include_usage with 400 (default: newest, accepted)
  --gzip               gzip responses for clients whose Accept-Encoding allows it (SSE flushed per
                       event), as a compressing proxy in front of the server would
  --metrics-fault F    ${METRICS_FAULTS.join(' | ')}: no-stats drops the engine series from /metrics
                       (vLLM --disable-log-stats), nan prints the load gauges as NaN
  --fault MODE         server-wide generation fault: ${GENERATION_FAULT_MODES.slice(0, 3).join(' | ')} |
                       ${GENERATION_FAULT_MODES.slice(3).join(' | ')}
  --debug-prefix-match serve POST /debug/prefix-match: the prompt tokens a request would hit in
                       the prefix cache now (the benchmark's oracle placement; no real server has it)
  --labels k=v,...     pod labels written to --pods-yaml (default app=sim)
  --pods-yaml FILE     write the matching Pod resources (labels + podIP, a kind: List)
  --exit-with-parent   stop when the process that started this one exits (for a program that
                       owns the servers)

Faults at run time: GET <url>/sim/faults shows them, POST <url>/sim/faults with
{"generation": "hang", "metrics": "nan"} changes them; a request header x-sim-fault: MODE sets
one request's generation fault. /metrics and health routes answer in every mode.

Runs until SIGINT or SIGTERM (or, with --exit-with-parent, its parent's end).
`;

// Kept for callers of the former echo simulator's module.
export { nextAddress, podsYaml } from './fleet.js';

/** A usage problem: reported as one line, exit code 2. */
class UsageError extends Error {}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels expects k=v pairs separated by commas (got "${pair}")`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

function int(name: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max} (got "${value}")`);
  return n;
}

function positive(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a number > 0 (got "${value}")`);
  return n;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export async function runSimCommand(argv: string[]): Promise<number> {
  let fleet: SimFleet | undefined;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        runtime: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        'port-step': { type: 'string' },
        replicas: { type: 'string' },
        'name-prefix': { type: 'string' },
        model: { type: 'string' },
        'model-path': { type: 'string' },
        tokenizer: { type: 'string' },
        lora: { type: 'string' },
        'max-loras': { type: 'string' },
        'allow-runtime-lora-updating': { type: 'boolean' },
        profile: { type: 'string' },
        'num-gpu-blocks': { type: 'string' },
        'max-model-len': { type: 'string' },
        'max-num-seqs': { type: 'string' },
        'max-num-batched-tokens': { type: 'string' },
        'time-scale': { type: 'string' },
        'pd-role': { type: 'string' },
        'pd-role-label': { type: 'string' },
        'side-channel-port': { type: 'string' },
        'kv-abort-timeout-ms': { type: 'string' },
        'bootstrap-port': { type: 'string' },
        'bootstrap-timeout-ms': { type: 'string' },
        'kv-transfer-ms-per-token': { type: 'string' },
        'kv-link-gbps': { type: 'string' },
        'embedding-dim': { type: 'string' },
        'kv-events': { type: 'boolean' },
        'kv-events-config': { type: 'string' },
        'kv-events-encoding': { type: 'string' },
        'kv-events-hashes': { type: 'string' },
        'data-parallel-rank': { type: 'string' },
        'triton-version': { type: 'string' },
        gzip: { type: 'boolean' },
        'debug-prefix-match': { type: 'boolean' },
        'metrics-fault': { type: 'string' },
        fault: { type: 'string' },
        labels: { type: 'string' },
        'pods-yaml': { type: 'string' },
        'exit-with-parent': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help === true) {
      process.stdout.write(SIM_HELP);
      return 0;
    }
    const runtime = values.runtime ?? 'vllm';
    if (!isSimRuntime(runtime)) throw new UsageError(`--runtime must be one of ${SIM_RUNTIMES.join(', ')} (got "${runtime}")`);
    const profile = values.profile ?? 'llama-3.1-8b-h100';
    if (!Object.hasOwn(PROFILES, profile)) throw new UsageError(`--profile must be one of ${Object.keys(PROFILES).join(', ')} (got "${profile}")`);
    const pdRoles = values['pd-role'] === undefined ? undefined : list(values['pd-role']);
    if (pdRoles !== undefined && (pdRoles.length === 0 || pdRoles.some((r) => r !== 'prefill' && r !== 'decode'))) {
      throw new UsageError(`--pd-role must be prefill or decode, or a list of them (got "${values['pd-role'] ?? ''}")`);
    }
    if (pdRoles !== undefined && runtime !== 'sglang' && runtime !== 'vllm') throw new UsageError('--pd-role needs --runtime sglang or vllm (prefill/decode disaggregation)');
    const models = list(values.model);
    const modelPath = values['model-path']?.trim();
    if (modelPath === '') throw new UsageError('--model-path must not be empty');
    const tokenizer = values.tokenizer;
    if (tokenizer === '') throw new UsageError('--tokenizer must not be empty');
    const loras = list(values.lora);
    const overrides: EngineProfileOverrides = {};
    const blocks = int('num-gpu-blocks', values['num-gpu-blocks'], 1, 2 ** 31);
    const maxModelLen = int('max-model-len', values['max-model-len'], 1, 2 ** 31);
    const maxNumSeqs = int('max-num-seqs', values['max-num-seqs'], 1, 2 ** 20);
    const batched = int('max-num-batched-tokens', values['max-num-batched-tokens'], 1, 2 ** 31);
    if (blocks !== undefined) Object.assign(overrides, { numGpuBlocks: blocks });
    if (maxModelLen !== undefined) Object.assign(overrides, { maxModelLen });
    if (maxNumSeqs !== undefined) Object.assign(overrides, { maxNumSeqs });
    if (batched !== undefined) Object.assign(overrides, { maxNumBatchedTokens: batched });
    const maxLoras = int('max-loras', values['max-loras'], 1, 1024);
    const envLora = (process.env['VLLM_ALLOW_RUNTIME_LORA_UPDATING'] ?? '').toLowerCase();
    const labels = parseLabels(values.labels ?? 'app=sim');
    const timeScale = positive('time-scale', values['time-scale']) ?? 1;
    const bootstrapPort = int('bootstrap-port', values['bootstrap-port'], 0, 65535);
    const bootstrapTimeoutMs = positive('bootstrap-timeout-ms', values['bootstrap-timeout-ms']);
    const kvMs = values['kv-transfer-ms-per-token'];
    const kvTransferMsPerToken = kvMs === undefined ? undefined : Number(kvMs);
    if (kvTransferMsPerToken !== undefined && !(Number.isFinite(kvTransferMsPerToken) && kvTransferMsPerToken >= 0)) {
      throw new UsageError(`--kv-transfer-ms-per-token must be a number >= 0 (got "${kvMs}")`);
    }
    const kvLinkGbps = positive('kv-link-gbps', values['kv-link-gbps']);
    let kvEvents;
    try {
      kvEvents = kvEventsFromFlags({
        enable: values['kv-events'],
        config: values['kv-events-config'],
        encoding: values['kv-events-encoding'],
        hashes: values['kv-events-hashes'],
        dataParallelRank: values['data-parallel-rank'],
      });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const embeddingDimension = int('embedding-dim', values['embedding-dim'], 1, MAX_EMBEDDING_DIMENSION);
    const tritonVersion = values['triton-version'];
    if (tritonVersion !== undefined && runtime !== 'trtllm') throw new UsageError('--triton-version needs --runtime trtllm');
    if (tritonVersion !== undefined && parseTritonVersion(tritonVersion) === undefined) {
      throw new UsageError(`--triton-version must be a Triton server version such as 2.59 (got "${tritonVersion}")`);
    }
    const metricsFault = values['metrics-fault'];
    if (metricsFault !== undefined && !isMetricsFault(metricsFault)) throw new UsageError(`--metrics-fault must be one of ${METRICS_FAULTS.join(', ')} (got "${metricsFault}")`);
    const fault = values.fault;
    if (fault !== undefined && parseGenerationFault(fault) === undefined) throw new UsageError(`--fault: ${generationFaultHelp(fault)}`);
    const host = values.host ?? '127.0.0.2';
    const port = int('port', values.port, 0, 65535) ?? 8000;
    const portStep = int('port-step', values['port-step'], 0, 1000) ?? 0;
    const replicas = int('replicas', values.replicas, 1, 256) ?? 1;
    if (pdRoles !== undefined && pdRoles.length > 1 && pdRoles.length !== replicas) throw new UsageError(`--pd-role lists ${pdRoles.length} roles for ${replicas} replicas`);
    const sideChannelPort = int('side-channel-port', values['side-channel-port'], 0, 65535);
    const kvAbortTimeoutMs = positive('kv-abort-timeout-ms', values['kv-abort-timeout-ms']);
    if (portStep === 0 && replicas > 1 && !/^\d+\.\d+\.\d+\.\d+$/.test(host)) throw new UsageError('--replicas on consecutive hosts needs an IPv4 --host (or use --port-step)');
    try {
      fleet = await startSimFleet({
        runtime,
        host,
        port,
        portStep,
        replicas,
        namePrefix: values['name-prefix'] ?? 'sim',
        ...(models.length === 0 ? {} : { model: models }),
        ...(modelPath === undefined ? {} : { modelPath }),
        ...(tokenizer === undefined ? {} : { tokenizer }),
        loras,
        ...(maxLoras === undefined ? {} : { maxLoras }),
        runtimeLoraUpdating: values['allow-runtime-lora-updating'] === true || envLora === 'true' || envLora === '1',
        profile: profile as ProfileName,
        overrides,
        timeScale,
        ...(pdRoles === undefined ? {} : pdRoles.length === 1 ? { pdRole: pdRoles[0] as PdRole } : { pdRoles: pdRoles as PdRole[] }),
        ...(sideChannelPort === undefined ? {} : { sideChannelPort }),
        ...(kvAbortTimeoutMs === undefined ? {} : { kvAbortTimeoutMs }),
        ...(bootstrapPort === undefined ? {} : { bootstrapPort }),
        ...(bootstrapTimeoutMs === undefined ? {} : { bootstrapTimeoutMs }),
        ...(kvTransferMsPerToken === undefined ? {} : { kvTransferMsPerToken }),
        ...(kvLinkGbps === undefined ? {} : { kvLinkGbps }),
        ...(embeddingDimension === undefined ? {} : { embeddingDimension }),
        ...(kvEvents === undefined ? {} : { kvEvents }),
        ...(tritonVersion === undefined ? {} : { tritonVersion }),
        ...(values.gzip === true ? { compress: true } : {}),
        ...(values['debug-prefix-match'] === true ? { prefixMatch: true } : {}),
        ...(metricsFault === undefined ? {} : { metricsFault }),
        ...(fault === undefined ? {} : { fault: fault as GenerationFaultMode }),
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      if (typeof e.address === 'string' && /^(tcp|ipc):\/\//.test(e.address)) {
        // A KV-events socket (zeromq names the endpoint it could not bind).
        process.stderr.write(`infergate sim: cannot bind kv events ${e.address}: ${e.code ?? e.message}\n`);
        return 1;
      }
      if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') {
        process.stderr.write(`infergate sim: cannot listen on ${e.address ?? host}:${e.port ?? port}: ${e.code}\n`);
        return 1;
      }
      if (err instanceof RangeError) throw new UsageError(err.message);
      if (err instanceof TokenizerLoadError) {
        process.stderr.write(`infergate sim: --tokenizer: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
    for (const s of fleet.servers) {
      const extra = s.bootstrapPort !== undefined ? `  bootstrap ${s.host}:${s.bootstrapPort}` : s.sideChannelPort !== undefined ? `  side channel ${s.host}:${s.sideChannelPort}` : '';
      const role = s.pdRole === undefined ? '' : ` ${s.pdRole}`;
      process.stdout.write(`${s.name}  ${s.runtime}${role}  ${s.url}  model ${s.engine.modelNames.join(',')}${modelPath === undefined ? '' : ` (${modelPath})`}${loras.length > 0 ? ` lora ${loras.join(',')}` : ''}${extra}\n`);
      const kv = s.kvEvents;
      if (kv !== undefined) process.stdout.write(`${s.name}  kv events ${kv.endpoint}${kv.replayEndpoint === null ? '' : `  replay ${kv.replayEndpoint}`}  topic ${kv.topic}\n`);
    }
    process.stdout.write(`profile ${profile}, time scale ${timeScale}; metrics at <url>/metrics\n`);
    const podsFile = values['pods-yaml'];
    if (podsFile !== undefined) {
      // Written whole or not at all (temp file + rename): readers poll for it to appear.
      await writeFile(`${podsFile}.tmp`, fleet.podsYaml(labels, values['pd-role-label']));
      await rename(`${podsFile}.tmp`, podsFile);
      process.stdout.write(`wrote ${fleet.servers.length} Pod resource(s) to ${podsFile}\n`);
    }
    process.stdout.write('Press Ctrl-C to stop.\n');
    await untilSignal({ followParent: values['exit-with-parent'] === true });
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`infergate sim: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  } finally {
    await fleet?.close();
  }
}
