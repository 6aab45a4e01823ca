/**
 * Defaults that apply when no policy says otherwise. Each is documented in docs/configuration.md.
 */

/**
 * Request body limit when no ClientTrafficPolicy sets `connection.bufferLimit`. Envoy's own default
 * (32 KiB) is far too small for LLM prompts; 16 MiB holds a 1M-token-class context in JSON while
 * bounding memory per request.
 */
export const DEFAULT_BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;

/** Milliseconds a file change must stay quiet before it is reloaded (editors write in bursts). */
export const RELOAD_DEBOUNCE_MS = 150;
