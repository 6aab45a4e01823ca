/*
 * gRPC status codes, the grpc-message encoding and the grpc-timeout header, as the gRPC over
 * HTTP/2 protocol defines them (grpc/grpc: doc/PROTOCOL-HTTP2.md, doc/statuscodes.md).
 */

/** gRPC status codes (doc/statuscodes.md); the values grpc-js's `status` enum has. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A call's end: a status code and its message (grpc-message). */
export interface GrpcStatus {
  readonly code: number;
  readonly details: string;
}

/**
 * `details` as the grpc-message header carries it: percent-encoded UTF-8, every byte outside
 * printable ASCII (0x20–0x7E) and `%` itself as `%XX` (PROTOCOL-HTTP2.md, "Responses").
 */
export function encodeGrpcMessage(details: string): string {
  // Fast path: nothing to escape (every message this server writes itself).
  if (/^[\x20-\x24\x26-\x7e]*$/.test(details)) return details;
  let out = '';
  for (const byte of Buffer.from(details, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Milliseconds per grpc-timeout unit: Hours, Minutes, Seconds, milliseconds, microseconds, nanoseconds. */
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/**
 * The grpc-timeout header (`TimeoutValue TimeoutUnit`: at most 8 ASCII digits, then one of
 * `HMSmun`) in milliseconds, rounded up (a deadline is never shortened to 0 by rounding); undefined
 * when malformed (the caller ends the call INTERNAL, as grpc-js does).
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (m === null) return undefined;
  return Math.ceil(Number(m[1]) * (TIMEOUT_UNIT_MS[m[2] as string] as number));
}
