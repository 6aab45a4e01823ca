/** The Kubernetes API as a configuration source (issue 19): see source.ts. */
export { ApiConnection, KubeConfigError, loadKubeConfig } from './connection.js';
export { DEFAULT_LIMITS, type KubernetesLimits } from './limits.js';
export { CONTROLLER_NAME, DEFAULT_GATEWAY_CLASS, DEFAULT_SERVE_LEASE, defaultIdentity, defaultNamespace, type KubernetesOptions } from './options.js';
export { KubernetesSource, type KubernetesSourceOptions } from './source.js';
export type { ViewScope } from './view.js';
