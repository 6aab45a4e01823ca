/**
 * A structural pre-scan of msgpack bytes (the msgpack spec, github.com/msgpack/msgpack spec.md):
 * walks the encoded value without building it, and refuses it when its shape is over a bound.
 *
 * Why before decoding: @msgpack/msgpack 3.x has per-container limits (maxArrayLength, …) but no
 * nesting-depth limit, and it allocates `new Array(declared)` before reading the elements. A
 * 1-byte-per-level nest (`0x91 0x91 …`) in a 16 MiB payload would build 16 million arrays; a
 * 5-byte header may declare 4 billion elements. The scan rejects both in one linear pass with no
 * allocation: nesting over `maxDepth`, a container declaring more entries than the bytes left
 * could hold (every msgpack value is at least 1 byte), strings/bins/exts longer than the bytes
 * left, the reserved byte 0xc1, and trailing bytes after the one top-level value.
 */

export interface ScanLimits {
  /** Deepest container nesting (the top-level value is depth 1). */
  readonly maxDepth: number;
  /** Most elements one array may declare. */
  readonly maxArrayLength: number;
  /** Most key/value pairs one map may declare. */
  readonly maxMapLength: number;
  /** Longest string, in bytes. */
  readonly maxStrLength: number;
  /** Longest bin or ext body, in bytes. */
  readonly maxBinLength: number;
}

/** Returns null when `bytes` holds exactly one msgpack value within `limits`, else why not (a short fixed phrase). */
export function scanMsgpack(bytes: Uint8Array, limits: ScanLimits): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  // Values still to read in the innermost open container (the top level is one value), and in
  // each enclosing one.
  let left = 1;
  const outer: number[] = [];
  let pos = 0;
  for (;;) {
    while (left === 0) {
      const up = outer.pop();
      if (up === undefined) return pos === end ? null : 'trailing bytes';
      left = up;
    }
    left--;
    if (pos >= end) return 'truncated';
    const b = bytes[pos++] as number;
    // Hot path: fixints, nil, bools (token ids are mostly fixints or uint16/uint32).
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue;
    if (b >= 0xca && b <= 0xd3) {
      // Fixed-width numbers: floats, uint8..64, int8..64.
      pos += NUMBER_BYTES[b - 0xca] as number;
      if (pos > end) return 'truncated';
      continue;
    }
    let container = -1; // values the new container holds, when b opens one
    let isMap = false;
    let skip = 0; // payload bytes after the header
    if (b <= 0x8f) {
      container = b & 0x0f;
      isMap = true;
    } else if (b <= 0x9f) {
      container = b & 0x0f;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
    } else {
      const need = HEADER_BYTES[b - 0xc0] ?? -1;
      if (need < 0) return 'invalid type byte';
      if (pos + need > end) return 'truncated';
      switch (b) {
        case 0xc4: skip = view.getUint8(pos); if (skip > limits.maxBinLength) return 'bin over bound'; break;
        case 0xc5: skip = view.getUint16(pos); if (skip > limits.maxBinLength) return 'bin over bound'; break;
        case 0xc6: skip = view.getUint32(pos); if (skip > limits.maxBinLength) return 'bin over bound'; break;
        case 0xc7: skip = view.getUint8(pos); if (skip > limits.maxBinLength) return 'bin over bound'; skip += 1; break; // ext: + type byte
        case 0xc8: skip = view.getUint16(pos); if (skip > limits.maxBinLength) return 'bin over bound'; skip += 1; break;
        case 0xc9: skip = view.getUint32(pos); if (skip > limits.maxBinLength) return 'bin over bound'; skip += 1; break;
        case 0xd4: skip = 2; break; // fixext 1..16: type byte + body
        case 0xd5: skip = 3; break;
        case 0xd6: skip = 5; break;
        case 0xd7: skip = 9; break;
        case 0xd8: skip = 17; break;
        case 0xd9: skip = view.getUint8(pos); break;
        case 0xda: skip = view.getUint16(pos); break;
        case 0xdb: skip = view.getUint32(pos); break;
        case 0xdc: container = view.getUint16(pos); break;
        case 0xdd: container = view.getUint32(pos); break;
        case 0xde: container = view.getUint16(pos); isMap = true; break;
        case 0xdf: container = view.getUint32(pos); isMap = true; break;
        default: break; // numbers: their fixed-size payload is counted in HEADER_BYTES
      }
      pos += need;
    }
    if (((b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb)) && skip > limits.maxStrLength) return 'string over bound';
    if (skip > 0) {
      if (pos + skip > end) return 'truncated';
      pos += skip;
    }
    if (container > 0) {
      if (isMap ? container > limits.maxMapLength : container > limits.maxArrayLength) return 'container over bound';
      const values = isMap ? container * 2 : container;
      if (values > end - pos) return 'declared length exceeds payload';
      if (outer.length + 1 > limits.maxDepth) return 'nesting over bound';
      outer.push(left);
      left = values;
    }
  }
}

/** Payload bytes of 0xca..0xd3: float32, float64, uint8, uint16, uint32, uint64, int8, int16, int32, int64. */
const NUMBER_BYTES: readonly number[] = [4, 8, 1, 2, 4, 8, 1, 2, 4, 8];

/**
 * Header bytes after the type byte for 0xc0..0xdf (−1: not a multi-byte form handled here).
 * Fixed-width numbers count their whole payload here (float32 4, uint64 8, …).
 */
const HEADER_BYTES: readonly number[] = [
  0, // c0 nil
  -1, // c1 never used
  0, 0, // c2 c3 bool
  1, 2, 4, // c4 c5 c6 bin
  1, 2, 4, // c7 c8 c9 ext
  4, 8, // ca cb float
  1, 2, 4, 8, // cc..cf uint
  1, 2, 4, 8, // d0..d3 int
  0, 0, 0, 0, 0, // d4..d8 fixext (type + body counted as skip)
  1, 2, 4, // d9 da db str
  2, 4, // dc dd array
  2, 4, // de df map
];
