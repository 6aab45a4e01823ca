/*
 * Envoy's part in tests: the stand-in lives in src/extproc/envoy-standin.ts so that the benchmark
 * can start it as a process of its own (`infergate envoy-standin`); the tests keep importing it here.
 */
export * from '../../src/extproc/envoy-standin.js';
