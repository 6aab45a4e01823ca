/**
 * Simulated model servers: programs beside the gateway, talking to it over HTTP only.
 * An engine in modelled time (engine/) behind the HTTP face of vLLM (V1, V0), SGLang or Triton
 * TensorRT-LLM; see docs/simulator.md.
 */
export { startSimServer, profileOf, type PdRole, type RunningSimServer, type SimServerOptions, type SimStats } from './server.js';
export { startSimFleet, nextAddress, podsYaml, type PodSource, type SimFleet, type SimFleetOptions } from './fleet.js';
export { FACES, SIM_RUNTIMES, isSimRuntime, type Face, type SimRuntime } from './runtimes.js';
export { createMetricsPage, METRICS_CONTENT_TYPE, pyFloat, type MetricsFault, type MetricsPage } from './metrics/index.js';
export { GENERATION_FAULT_MODES, METRICS_FAULTS, parseGenerationFault, type GenerationFault, type GenerationFaultMode, type SimFaults } from './faults.js';
export { acceptsGzip } from './compress.js';
export { DEFAULT_EMBEDDING_DIMENSION, embeddingVector } from './embeddings.js';
export { parseTritonVersion, TRITON_LATEST_MINOR } from './triton-version.js';
export {
  BOOTSTRAP_PATH,
  DEFAULT_BOOTSTRAP_PORT,
  DEFAULT_BOOTSTRAP_TIMEOUT_MS,
  parseBootstrap,
  type BootstrapFields,
} from './pd.js';
export { kvTransferMsPerToken, linkMsPerToken, RDMA_GBPS_PER_GPU } from './kv-link.js';
export { DEFAULT_KV_ABORT_TIMEOUT_MS, DEFAULT_SIDE_CHANNEL_PORT, NIXL_READ_PATH, parseKvTransferParams, type KvTransferRequest, type ProducedKvParams, type RemoteKv } from './nixl.js';
export { runSimCommand, SIM_HELP } from './sim-command.js';
export { SimClock, PROFILES, type EngineProfile, type EngineProfileOverrides, type ProfileName } from './engine/index.js';
