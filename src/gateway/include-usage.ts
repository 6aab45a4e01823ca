/**
 * Streams report token usage only when asked (`stream_options.include_usage`). The gateway needs
 * the counts for every request, so it asks on the client's behalf and, having asked, removes the
 * extra usage event before the client sees it (proxy/response-observer.ts).
 */

/**
 * The `stream_options` value (JSON text) that asks for usage: the client's options kept, with
 * `include_usage: true`. The caller puts it in place of the client's member (json-scan.ts
 * editTopLevel), so every other byte of the body is forwarded as sent.
 */
export function includeUsageOptions(json: Readonly<Record<string, unknown>>): string {
  const existing = json['stream_options'];
  const options = existing !== null && typeof existing === 'object' && !Array.isArray(existing) ? existing : {};
  return JSON.stringify({ ...options, include_usage: true });
}

/** True when the client asked for the usage event itself. */
export function clientWantsUsage(json: Readonly<Record<string, unknown>>): boolean {
  const options = json['stream_options'];
  return options !== null && typeof options === 'object' && (options as { include_usage?: unknown }).include_usage === true;
}
