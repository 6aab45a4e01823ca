/**
 * Header changes as data: what the gateway core wants done to a request's or response's headers,
 * applied by whichever data plane carries the bytes (the HTTP proxy edits its header object; an
 * Envoy ext_proc server turns them into a header mutation). Names are lower-case. Operations apply
 * in order: `set` replaces, `add` appends a value, `remove` deletes.
 */
export type HeaderEdit =
  | { readonly op: 'set'; readonly name: string; readonly value: string }
  | { readonly op: 'add'; readonly name: string; readonly value: string }
  | { readonly op: 'remove'; readonly name: string };

export type HeaderMap = Record<string, string | string[]>;

/** Applies `edits` (from index `from` on) to `headers` in place and returns it. */
export function applyHeaderEdits(headers: HeaderMap, edits: readonly HeaderEdit[], from = 0): HeaderMap {
  for (let i = from; i < edits.length; i++) {
    const e = edits[i] as HeaderEdit;
    if (e.op === 'remove') delete headers[e.name];
    else if (e.op === 'set') headers[e.name] = e.value;
    else {
      const prior = headers[e.name];
      headers[e.name] = prior === undefined ? e.value : Array.isArray(prior) ? [...prior, e.value] : [prior, e.value];
    }
  }
  return headers;
}
