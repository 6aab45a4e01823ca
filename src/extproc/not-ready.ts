import { GatewayError } from '../core/errors.js';
import type { RequestProcessor, RequestProcessorFactory } from './processor.js';
import { refusalOf } from './refusal.js';

/**
 * The processor of a picker whose configuration is not loaded yet (the first Kubernetes list, or
 * the first read of its files, has not been applied). Its health ports already answer, so a
 * liveness probe does not restart a picker that waits for an unreachable API server, while its
 * readiness keeps Envoy away; a request that arrives anyway is refused with 503 `pool_not_found`
 * and `Retry-After`, as for a pool missing from a loaded configuration.
 */
export const notReadyProcessor: RequestProcessorFactory = (): RequestProcessor => ({
  headers: () => Promise.reject(new GatewayError('pool_not_found', 'the endpoint picker has not loaded its configuration yet', { retryAfterSeconds: 1 })),
  bodyChunk: () => Promise.resolve(undefined),
  bodyTooLarge: (max) => refusalOf(new GatewayError('body_too_large', `request body is larger than ${max} bytes`)),
  responseHeaders: () => Promise.resolve([]),
  responseBody: (chunk) => chunk,
  responseTrailers: () => Promise.resolve(),
  completed: () => undefined,
  cancelled: () => undefined,
});
