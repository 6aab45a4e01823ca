/*
 * The request scope moved to the core (gateway/request-scope.ts) so every data plane shares it;
 * this name stays for the proxy files that still import it from here. New code imports it from
 * gateway/index.ts.
 */
export { RequestScope, Stopped } from '../gateway/index.js';
