import { Endpoint } from '../core/endpoint.js';

/**
 * The decode server a PD sidecar sits beside (`--decode-url`, e.g. `http://127.0.0.1:8200`): an
 * http origin with an explicit or default port and nothing else (no path, query, credentials).
 * Throws RangeError naming what is wrong.
 */
export function parseDecodeUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`--decode-url must be an http URL such as http://127.0.0.1:8200 (got "${value.slice(0, 200)}")`);
  }
  if (url.protocol !== 'http:') throw new RangeError(`--decode-url must use http: (the decode server beside the sidecar speaks plain HTTP; got ${url.protocol})`);
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new RangeError(`--decode-url must be an origin only, http://host:port (got "${value.slice(0, 200)}")`);
  }
  return url;
}

/**
 * The local decode server as the core's Endpoint: the decode leg of every pinned pair runs on it
 * (its in-flight accounting lives in this one object for the sidecar's life). `podName` names it
 * in the `Request Handled` line.
 */
export function localDecodeEndpoint(url: URL, podName: string): Endpoint {
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? 80 : Number(url.port);
  return new Endpoint({ address: host, port, name: podName, podName, labels: {}, role: 'decode' });
}
