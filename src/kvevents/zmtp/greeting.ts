/**
 * The ZMTP 3 greeting (RFC 23/ZMTP 3.0 §"The Greeting", RFC 37/ZMTP 3.1): 64 bytes each side
 * sends first, before any frame:
 *
 *   0     0xFF                 signature
 *   1–8   padding (0x00 × 8)
 *   9     0x7F                 signature
 *   10    major version (3)
 *   11    minor version
 *   12–31 mechanism, ASCII, zero-padded ("NULL")
 *   32    as-server (0: we are the client)
 *   33–63 filler (0x00 × 31)
 *
 * We announce 3.0: a libzmq 4.3 peer that sees minor 0 speaks 3.0 back (zmtp_engine's
 * handshake_v3_0) and takes subscriptions in 3.0's form, a message `0x01 + topic` (RFC 23
 * §"The SUB socket type"), rather than 3.1's SUBSCRIBE command. libzmq 4.x peers accept both.
 */

export const GREETING_BYTES = 64;
export const ZMTP_MAJOR = 3;
export const ZMTP_MINOR = 0;
export const MECHANISM_NULL = 'NULL';

export function encodeGreeting(): Buffer {
  const g = Buffer.alloc(GREETING_BYTES);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = ZMTP_MAJOR;
  g[11] = ZMTP_MINOR;
  g.write(MECHANISM_NULL, 12, 'latin1');
  g[32] = 0; // as-server: unused by NULL
  return g;
}

export type GreetingCheck = { readonly ok: true; readonly major: number; readonly minor: number } | { readonly ok: false; readonly reason: string };

/** Checks a peer's 64-byte greeting: a ZMTP 3.x peer using the NULL mechanism. */
export function parseGreeting(g: Buffer): GreetingCheck {
  if (g.length < GREETING_BYTES || g[0] !== 0xff || (g[9]! & 0x01) !== 0x01) return { ok: false, reason: 'not a ZMTP greeting' };
  const major = g[10]!;
  const minor = g[11]!;
  if (major < 3) return { ok: false, reason: `ZMTP ${major}.x is not supported (3.x needed)` };
  const end = g.indexOf(0, 12);
  const mechanism = g.toString('latin1', 12, end < 0 || end > 32 ? 32 : end);
  if (mechanism !== MECHANISM_NULL) return { ok: false, reason: 'the peer wants a security mechanism other than NULL' };
  return { ok: true, major, minor };
}
