import type { FrameLimits } from './frames.js';
import { MAX_COMMAND_BYTES, type ConnectionOptions } from './connection.js';

/**
 * Options shared by ZmtpSubscriber and ZmtpDealer. The names that zeromq.js also has mean the
 * same (`maxMessageSize` is a FRAME bound there too, ZMQ_MAXMSGSIZE); the rest are bounds
 * zeromq.js does not offer.
 */
export interface ZmtpSocketOptions {
  /** Largest frame, bytes; a bigger one drops the connection. Default 8 MiB. */
  readonly maxMessageSize?: number;
  /** Most messages waiting unread. Default 1,000 (libzmq's ZMQ_RCVHWM). */
  readonly receiveHighWaterMark?: number;
  /** Most frames in one message; more drops the connection. Default 3 (a vLLM KV events batch). */
  readonly maxFramesPerMessage?: number;
  /** Most bytes in one message (all frames). Default `maxMessageSize` + 64 KiB (room for a topic and a seq beside a largest payload). */
  readonly maxMessageBytes?: number;
  /** First reconnect delay, ms; doubles per failed attempt. Default 100 (libzmq's ZMQ_RECONNECT_IVL). */
  readonly reconnectInterval?: number;
  /** Longest reconnect delay, ms. Default 3,200. */
  readonly reconnectMaxInterval?: number;
  /** A peer that has not completed greeting + READY in this long is dropped, ms. Default 10,000. */
  readonly handshakeTimeout?: number;
  /** Accepted for zeromq.js compatibility; nothing is kept unsent at close (as linger 0). */
  readonly linger?: number;
}

export const ZMTP_DEFAULTS = Object.freeze({
  maxMessageSize: 8 * 1024 * 1024,
  receiveHighWaterMark: 1_000,
  maxFramesPerMessage: 3,
  reconnectInterval: 100,
  reconnectMaxInterval: 3_200,
  handshakeTimeout: 10_000,
});

export function frameLimits(o: ZmtpSocketOptions): FrameLimits {
  const maxFrameBytes = o.maxMessageSize ?? ZMTP_DEFAULTS.maxMessageSize;
  return {
    maxFrameBytes,
    maxFrames: o.maxFramesPerMessage ?? ZMTP_DEFAULTS.maxFramesPerMessage,
    maxMessageBytes: o.maxMessageBytes ?? maxFrameBytes + 64 * 1024,
    maxCommandBytes: MAX_COMMAND_BYTES,
  };
}

export function timing(o: ZmtpSocketOptions): Pick<ConnectionOptions, 'reconnectIvlMs' | 'reconnectIvlMaxMs' | 'handshakeTimeoutMs'> {
  return {
    reconnectIvlMs: o.reconnectInterval ?? ZMTP_DEFAULTS.reconnectInterval,
    reconnectIvlMaxMs: o.reconnectMaxInterval ?? ZMTP_DEFAULTS.reconnectMaxInterval,
    handshakeTimeoutMs: o.handshakeTimeout ?? ZMTP_DEFAULTS.handshakeTimeout,
  };
}
