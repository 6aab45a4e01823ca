/**
 * `tcp://HOST:PORT` (HOST a name, an IPv4 address or a bracketed IPv6 address), the only
 * transport this client speaks. ipc:// and the rest are refused with a clear error.
 */
export interface TcpEndpoint {
  readonly host: string;
  readonly port: number;
}

export function parseTcpEndpoint(endpoint: string): TcpEndpoint {
  const m = /^tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(endpoint);
  if (m === null) {
    const scheme = /^([a-z]+):\/\//.exec(endpoint)?.[1];
    if (scheme !== undefined && scheme !== 'tcp') throw new Error(`zmtp: only tcp://HOST:PORT endpoints are supported, not ${scheme}:// (${endpoint.slice(0, 200)})`);
    throw new Error(`zmtp: not a tcp://HOST:PORT endpoint: ${endpoint.slice(0, 200)}`);
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535) throw new Error(`zmtp: port out of range in ${endpoint}`);
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}
