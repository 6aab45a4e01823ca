import { createRequire } from 'node:module';
import { ZmtpDealer, ZmtpSubscriber, type ZmtpDealerOptions, type ZmtpSocketOptions } from './zmtp/index.js';

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

/** What the KV events subscriber uses of a SUB socket (zeromq.js's `Subscriber` or ZmtpSubscriber). */
export interface KvSubSocket extends AsyncIterable<Buffer[]> {
  readonly events: { on(type: 'connect' | 'disconnect' | 'violation', listener: () => void): unknown };
  subscribe(): void;
  connect(endpoint: string): void;
  close(): void;
}

/** What the replay request uses of a DEALER socket (zeromq.js's `Dealer` or ZmtpDealer). */
export interface KvDealerSocket {
  receiveTimeout: number;
  connect(endpoint: string): void;
  send(frames: (Buffer | string)[]): Promise<void>;
  receive(): Promise<Buffer[]>;
  close(): void;
}

/**
 * A SUB socket for `endpoint`: tcp:// gets our own ZMTP reader (zmtp/), which bounds frames and
 * bytes per message, which zeromq.js cannot; ipc:// (a socket file only a co-located, trusted
 * process can reach) stays on zeromq.js.
 */
export function kvSubSocket(endpoint: string, options: ZmtpSocketOptions): KvSubSocket {
  if (endpoint.startsWith('ipc://')) {
    const sub = new (zmq().Subscriber)({ linger: 0, ...zmqOptions(options) });
    // zeromq.js cuts no peer off for a message's size, so it has no 'violation' to report.
    return {
      events: { on: (type: 'connect' | 'disconnect' | 'violation', listener: () => void): unknown => (type === 'violation' ? undefined : sub.events.on(type, listener)) },
      subscribe: () => sub.subscribe(),
      connect: (address: string) => sub.connect(address),
      close: () => sub.close(),
      [Symbol.asyncIterator]: () => sub[Symbol.asyncIterator](),
    };
  }
  return new ZmtpSubscriber(options);
}

/** A DEALER socket for `endpoint`, chosen as kvSubSocket does. */
export function kvDealerSocket(endpoint: string, options: ZmtpDealerOptions): KvDealerSocket {
  if (endpoint.startsWith('ipc://')) return new (zmq().Dealer)({ linger: 0, ...zmqOptions(options), ...(options.sendTimeout !== undefined ? { sendTimeout: options.sendTimeout } : {}) });
  return new ZmtpDealer(options);
}

function zmqOptions(o: ZmtpSocketOptions): { maxMessageSize?: number; receiveHighWaterMark?: number } {
  return {
    ...(o.maxMessageSize !== undefined ? { maxMessageSize: o.maxMessageSize } : {}),
    ...(o.receiveHighWaterMark !== undefined ? { receiveHighWaterMark: o.receiveHighWaterMark } : {}),
  };
}
