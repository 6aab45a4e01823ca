/** The resource model: loading, validation and summaries of Kubernetes-shaped documents. */
export { loadFiles, parseDocuments, parseObject } from './load.js';
export { fieldSource } from './field-lines.js';
export { summarize } from './summary.js';
export { errorCount, formatProblem, formatProblemAt } from './types.js';
export type * from './types.js';
