import { createRequire } from 'node:module';

/**
 * The ZeroMQ binding, loaded on first use: a native addon that costs about 4–9 MB of resident
 * memory once loaded (measured on Node 20), which a gateway without precise pools never needs.
 * The package is CommonJS, so a synchronous require keeps socket creation synchronous.
 */
type Zmq = typeof import('zeromq');

let loaded: Zmq | undefined;

export function zmq(): Zmq {
  loaded ??= createRequire(import.meta.url)('zeromq') as Zmq;
  return loaded;
}
