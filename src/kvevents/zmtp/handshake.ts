import { encodeCommand } from './frames.js';

/**
 * The NULL mechanism's handshake (RFC 23/ZMTP 3.0 §"The NULL Security Mechanism"; RFC 37): after
 * the greetings each side sends a READY command whose data is metadata properties, each
 * name-size (1 byte), name (ASCII), value-size (4 bytes, network order), value. `Socket-Type`
 * is required; libzmq checks it against its own type (zmtp_engine / mechanism_t::check_socket_type)
 * and drops an incompatible peer, and so do we.
 */

export type ZmtpSocketType = 'SUB' | 'DEALER';

/** The peer socket types each of ours may talk to (RFC 23 §"Socket types" compatibility table). */
const COMPATIBLE: Readonly<Record<ZmtpSocketType, readonly string[]>> = {
  SUB: ['PUB', 'XPUB'],
  DEALER: ['ROUTER', 'DEALER', 'REP'],
};

/** Most properties read from a peer's READY (libzmq sends Socket-Type and maybe Identity). */
const MAX_PROPERTIES = 32;

export function encodeReady(socketType: ZmtpSocketType): Buffer {
  return encodeCommand('READY', encodeProperties({ 'Socket-Type': socketType }));
}

function encodeProperties(props: Readonly<Record<string, string>>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(props)) {
    const n = Buffer.from(name, 'latin1');
    const v = Buffer.from(value, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(v.length);
    parts.push(Buffer.from([n.length]), n, len, v);
  }
  return Buffer.concat(parts);
}

/** Properties of a READY command, names lower-cased (they are case-insensitive); undefined if malformed. */
export function parseProperties(data: Buffer): Map<string, Buffer> | undefined {
  const out = new Map<string, Buffer>();
  let i = 0;
  while (i < data.length) {
    if (out.size >= MAX_PROPERTIES) return undefined;
    const nameLen = data[i]!;
    if (nameLen === 0 || i + 1 + nameLen + 4 > data.length) return undefined;
    const name = data.toString('latin1', i + 1, i + 1 + nameLen).toLowerCase();
    i += 1 + nameLen;
    const valueLen = data.readUInt32BE(i);
    i += 4;
    if (i + valueLen > data.length) return undefined;
    out.set(name, data.subarray(i, i + valueLen));
    i += valueLen;
  }
  return out;
}

/** Checks a peer's READY data; a reason when it is malformed or its socket type cannot talk to ours. */
export function checkReady(ours: ZmtpSocketType, data: Buffer): string | undefined {
  const props = parseProperties(data);
  if (props === undefined) return 'malformed READY';
  const type = props.get('socket-type')?.toString('latin1');
  if (type === undefined) return 'READY without Socket-Type';
  if (!COMPATIBLE[ours].includes(type)) return `a ${ours} socket cannot talk to a ${type.slice(0, 16)} peer`;
  return undefined;
}
