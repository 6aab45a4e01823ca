/**
 * A model-server endpoint (`address:port`) and the live state the gateway keeps about it.
 * The object outlives config snapshots: a reload that keeps the endpoint keeps its counters, so
 * requests in flight across a reload are still accounted on the same object.
 */
export class Endpoint {
  /** `address:port` (IPv6 in brackets); unique within the process. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Origin for the upstream HTTP client, e.g. `http://127.0.0.2:8000`. */
  readonly origin: string;
  /** Pod name, or `<pod>-rank-<i>` when a pool has several target ports. */
  name: string;
  podName: string;
  labels: Readonly<Record<string, string>>;
  /** Requests this gateway has dispatched to the endpoint and not yet finished. */
  inFlight = 0;

  constructor(init: { address: string; port: number; name: string; podName: string; labels: Readonly<Record<string, string>> }) {
    this.address = init.address;
    this.port = init.port;
    const host = init.address.includes(':') ? `[${init.address}]` : init.address;
    this.key = `${host}:${init.port}`;
    this.origin = `http://${host}:${init.port}`;
    this.name = init.name;
    this.podName = init.podName;
    this.labels = init.labels;
  }
}

export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
