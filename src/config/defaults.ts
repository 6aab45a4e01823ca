/**
 * Defaults that apply when no policy says otherwise. Each is documented in docs/configuration.md.
 */

/**
 * Request body limit when no ClientTrafficPolicy sets `connection.bufferLimit`. Envoy's own default
 * (32 KiB) is far too small for LLM prompts; 16 MiB holds a 1M-token-class context in JSON while
 * bounding memory per request.
 */
export const DEFAULT_BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;

/**
 * Milliseconds the watched files must stay quiet (no event, no new stamp) before a change is read.
 * Editors and tools write in bursts of a few milliseconds (truncate, write, chmod, rename); 300 ms
 * lets a burst finish while a valid edit still applies within a fraction of a second.
 */
export const RELOAD_DEBOUNCE_MS = 300;

/**
 * Milliseconds a change that would remove serving resources (a file emptied or deleted, a file
 * losing documents) must stay unchanged before it applies. A tool that truncates a file and writes
 * it later, or writes it in chunks, leaves a short or empty file for a while: held this long, a
 * half-written file never drops a pool or a route, and a real removal still applies, 3 s later.
 * Longer than the 1 s polling interval (so a rewrite is seen even without file events) and than
 * the 2 s Traefik waits between configuration reloads (`providersThrottleDuration`).
 */
export const RELOAD_REMOVAL_SETTLE_MS = 3000;
