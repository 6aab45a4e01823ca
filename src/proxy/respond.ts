/** Answers the gateway writes itself: shared with the PD sidecar, so they live in the upstream layer. */
export { errorAnswer, jsonHeaders, resetResponse, sendError, sendJson, type ErrorResponseOptions } from '../upstream/respond.js';
