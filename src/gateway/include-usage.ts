/**
 * Streams report token usage only when asked (`stream_options.include_usage`). The gateway needs
 * the counts for every request, so it asks on the client's behalf and, having asked, removes the
 * extra usage event before the client sees it (proxy/response-observer.ts).
 *
 * The common case (no `stream_options` at all) inserts the field right after the body's opening
 * brace and leaves every other byte as sent; a body that has `stream_options` without
 * `include_usage: true` is re-serialised, which is rare.
 */
export function withIncludeUsage(raw: Buffer, json: Readonly<Record<string, unknown>>): Buffer {
  const existing = json['stream_options'];
  if (existing === undefined) {
    const brace = raw.indexOf(0x7b /* { */);
    if (brace !== -1) {
      const empty = /^\s*\}/.test(raw.subarray(brace + 1, brace + 64).toString('latin1'));
      const insert = Buffer.from(`"stream_options":{"include_usage":true}${empty ? '' : ','}`, 'utf8');
      return Buffer.concat([raw.subarray(0, brace + 1), insert, raw.subarray(brace + 1)]);
    }
  }
  const options = existing !== null && typeof existing === 'object' && !Array.isArray(existing) ? existing : {};
  return Buffer.from(JSON.stringify({ ...json, stream_options: { ...options, include_usage: true } }), 'utf8');
}

/** True when the client asked for the usage event itself. */
export function clientWantsUsage(json: Readonly<Record<string, unknown>>): boolean {
  const options = json['stream_options'];
  return options !== null && typeof options === 'object' && (options as { include_usage?: unknown }).include_usage === true;
}
