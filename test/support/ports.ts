/** Free ports for tests: the same helpers the benchmark suite uses. */
export { freePort, freePortOnAll } from '../../src/bench/suite/ports.js';
