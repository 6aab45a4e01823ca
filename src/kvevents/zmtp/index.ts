/**
 * A minimal ZMTP 3 client (ZeroMQ RFC 23, RFC 37) over node:net, for the gateway's KV events
 * sockets: it reads frames as a stream and refuses a message over its bounds (frames, bytes)
 * before allocating it, which no ZeroMQ binding offers (libzmq bounds frame size and queued
 * messages, not frames per message, and zeromq.js gathers a whole message first).
 */
export { ZmtpSubscriber } from './sub.js';
export { ZmtpDealer, type ZmtpDealerOptions } from './dealer.js';
export { ZMTP_DEFAULTS, type ZmtpSocketOptions } from './options.js';
export type { ConnectionViolation } from './connection.js';
