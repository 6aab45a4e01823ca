import { GatewayError } from '../core/errors.js';

/**
 * Why a request's authority is ambiguous, as the 400 `invalid_host` to refuse it with; undefined
 * when it is not. Routing (HTTPRoute `hostnames`) reads one authority and the model server may read
 * another, so a request that names two is refused rather than guessed at:
 *
 * - more than one `Host` field (RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
 *   … to any HTTP/1.1 request message that … contains more than one Host header field");
 * - an absolute-form target (`POST http://a/v1/… HTTP/1.1`) whose authority differs from `Host`
 *   (§3.2.2 has a proxy replace `Host` with it; the gateway, which routes on `Host`, refuses);
 * - HTTP/2: a `host` field that differs from `:authority` (RFC 9113 §8.3.1).
 *
 * - no `Host` when `hostRequired` (an HTTP/1.1 request, RFC 9112 §3.2: "A server MUST respond
 *   with a 400 … to any HTTP/1.1 request message that lacks a Host header field");
 * - a `Host` that is not `host[:port]` as RFC 3986 §3.2.2 writes a host (`a b`, `a/b`, `u@h`):
 *   what routing and the model server would make of it is anyone's guess.
 *
 * `rawHeaders` is the request's header list as received, names and values alternating (Node's
 * `rawHeaders`: it keeps duplicates that `headers` merges or drops); `target` the request-target.
 */
export function hostProblem(rawHeaders: readonly string[], target: string, hostRequired = false): GatewayError | undefined {
  const hosts: string[] = [];
  let authority: string | undefined;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (name === 'host') hosts.push((rawHeaders[i + 1] as string).trim().toLowerCase());
    else if (name === ':authority') authority = (rawHeaders[i + 1] as string).trim().toLowerCase();
  }
  if (hosts.length > 1) return new GatewayError('invalid_host', `the request has ${hosts.length} Host header fields; exactly one is allowed (RFC 9112 §3.2)`);
  const host = hosts[0];
  if (host === undefined) return hostRequired ? new GatewayError('invalid_host', 'the request has no Host header; HTTP/1.1 requires one (RFC 9112 §3.2)') : undefined;
  if (!HOST_SYNTAX.test(host)) return new GatewayError('invalid_host', `the request's Host header ${JSON.stringify(host.slice(0, 64))} is not a host name or address with an optional port (RFC 3986 §3.2.2)`);
  if (authority !== undefined && authority !== host) return new GatewayError('invalid_host', 'the request\'s Host header differs from its :authority (RFC 9113 §8.3.1)');
  const absolute = targetAuthority(target);
  if (absolute !== undefined && absolute !== host) return new GatewayError('invalid_host', 'the request\'s Host header differs from the authority of its absolute-form target (RFC 9112 §3.2.2)');
  return undefined;
}

/**
 * `uri-host [ ":" port ]` (RFC 9110 §7.2): an IP-literal in brackets, or a reg-name / IPv4
 * address (unreserved, sub-delims and percent-escapes), then digits after a colon. Empty is
 * allowed (RFC 9112 §3.2: the value for a target with no authority).
 */
const HOST_SYNTAX = /^(?:\[[0-9a-f:.]+(?:%25[\w.~-]+)?\]|\[v[0-9a-f]+\.[\w.~!$&'()*+,;=:-]+\]|(?:[\w.~!$&'()*+,;=-]|%[0-9a-f]{2})*)(?::\d*)?$/i;

/** The authority of an absolute-form request-target (`http://host:port/path`), lower-cased; undefined for origin-form. */
function targetAuthority(target: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(target);
  if (m === null) return undefined;
  const authority = (m[1] ?? '').toLowerCase();
  // userinfo is not part of the authority Host carries (RFC 9110 §4.2.4 forbids it in http URIs).
  const at = authority.lastIndexOf('@');
  return at === -1 ? authority : authority.slice(at + 1);
}
