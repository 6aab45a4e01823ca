import { DEFAULT_GATEWAY_CLASS, DEFAULT_SERVE_LEASE, defaultIdentity, defaultNamespace, type KubernetesOptions } from '../config/kubernetes/options.js';
import type { KubernetesSource } from '../config/kubernetes/source.js';
import type { StatusReporting } from '../config/kubernetes/status-reporting.js';
import type { SourceLog } from '../config/source.js';
import type { Gateway } from '../gateway/index.js';
import type { ViewScope } from '../config/kubernetes/view.js';
import { OptionError } from './options.js';

/** The Kubernetes flags of `serve` and `epp`, for their `parseArgs` tables. */
export const KUBERNETES_FLAGS = {
  kubernetes: { type: 'boolean' },
  kubeconfig: { type: 'string' },
  namespace: { type: 'string' },
  'all-namespaces': { type: 'boolean' },
  'gateway-class': { type: 'string' },
  'lease-name': { type: 'string' },
} as const;

/** `serve --help`'s lines for them. */
export const SERVE_KUBERNETES_HELP = `Kubernetes (instead of -f; docs/kubernetes.md):
      --kubernetes           take the configuration from the Kubernetes API: list and watch
                             Gateways, HTTPRoutes, InferencePools, models, policies, Services
                             and the Pods they select; not ready until the first list applied
      --kubeconfig PATH      client configuration (default: in-cluster service account, else
                             $KUBECONFIG, else ~/.kube/config)
      --namespace NS         the namespace watched and the Lease's (default: the pod's own,
                             else "default")
      --all-namespaces       watch every namespace (--namespace then places only the Lease)
      --gateway-class NAME   serve the Gateways of this GatewayClass, whose controllerName must
                             be infergate.dev/gateway-controller (default infergate)
      --lease-name NAME      the Lease electing the replica that writes status (default
                             infergate-status); identity from $POD_NAME, else the hostname
`;

/** `epp --help`'s lines for them (aligned with its other options). */
export const EPP_KUBERNETES_HELP = `      --kubernetes             take the pool, its models and policies and the Pods it selects
                               from the Kubernetes API (list and watch) instead of -f
      --kubeconfig PATH        client configuration (default: in-cluster service account,
                               else $KUBECONFIG, else ~/.kube/config)
      --namespace NS           the Lease's namespace, and the pool's when neither
                               --pool-namespace nor env NAMESPACE says (default: the pod's own,
                               else "default")
      --lease-name NAME        the Lease electing the replica that writes the pool's status
                               (default <pool-name>-epp)
`;

type Values = Readonly<Record<string, string | boolean | string[] | undefined>>;

/** A Kubernetes namespace is an RFC 1123 label (Kubernetes API conventions). */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A Lease's name is an RFC 1123 subdomain: lower-case labels joined by dots, at most 253 characters (Kubernetes API conventions). */
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * The Kubernetes flags as KubernetesOptions, or undefined without `--kubernetes` (then none of its
 * flags may be given). `-f` (and `--backend`) exclude `--kubernetes`: each is a whole
 * configuration. `epp` takes neither `--gateway-class` nor `--all-namespaces` (one picker, one
 * pool); its Lease defaults to `<leaseBase>-epp`. Throws OptionError.
 */
export function kubernetesOptions(values: Values, command: 'serve' | 'epp', leaseBase?: string): KubernetesOptions | undefined {
  const given = (Object.keys(KUBERNETES_FLAGS) as (keyof typeof KUBERNETES_FLAGS)[]).filter((f) => f !== 'kubernetes' && values[f] !== undefined);
  if (values['kubernetes'] !== true) {
    if (given.length > 0) throw new OptionError(`--${given[0]} goes with --kubernetes`);
    return undefined;
  }
  const files = values['file'];
  if (Array.isArray(files) && files.length > 0) throw new OptionError('-f and --kubernetes exclude each other: the configuration comes either from files or from the Kubernetes API');
  if (values['backend'] !== undefined) throw new OptionError('--backend and --kubernetes exclude each other: the configuration comes either from --backend or from the Kubernetes API');
  if (command === 'epp') {
    for (const flag of ['gateway-class', 'all-namespaces'] as const) {
      if (values[flag] !== undefined) throw new OptionError(`--${flag} is for infergate serve; an endpoint picker serves one pool (--pool-name, --pool-namespace)`);
    }
  }
  const str = (name: string): string | undefined => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  const namespace = str('namespace') ?? defaultNamespace();
  if (!NAMESPACE.test(namespace)) throw new OptionError(`--namespace must be a namespace name (lower-case RFC 1123 label, at most 63 characters), got "${namespace}"`);
  const gatewayClass = str('gateway-class') ?? DEFAULT_GATEWAY_CLASS;
  if (gatewayClass.trim() === '') throw new OptionError('--gateway-class must not be empty');
  const leaseName = str('lease-name') ?? (command === 'serve' ? DEFAULT_SERVE_LEASE : `${leaseBase ?? 'infergate'}-epp`);
  // The API server refuses any other name (422) on every try: status would never be written, with
  // one warning in the log. Said at start instead, naming where the name came from.
  if (leaseName.length > 253 || !SUBDOMAIN.test(leaseName)) {
    const from = str('lease-name') !== undefined ? '--lease-name' : `the default Lease name (<pool-name>-epp, from --pool-name)`;
    throw new OptionError(`${from} must be a Kubernetes object name (lower-case letters, digits, '-' and '.', at most 253 characters), got "${leaseName.slice(0, 300)}"${str('lease-name') === undefined ? '; give --lease-name' : ''}`);
  }
  const kubeconfig = str('kubeconfig');
  return {
    ...(kubeconfig === undefined ? {} : { kubeconfig }),
    namespace,
    allNamespaces: values['all-namespaces'] === true,
    gatewayClass,
    leaseName,
    identity: defaultIdentity(),
  };
}

/** What status reporting writes for: the Gateways of `--gateway-class` (serve), or one pool (epp). */
export type StatusTarget = { readonly mode: 'gateway' } | { readonly mode: 'epp'; readonly poolName: string; readonly poolNamespace: string };

/** `--kubernetes`'s source and, once the gateway runs, its status reporting over the same connection. */
export interface KubernetesMode {
  readonly source: KubernetesSource;
  /**
   * Starts status reporting for `gateway` (every replica computes it; the Lease holder writes it).
   * Stop the result before the gateway closes (the source closes the connection): that releases
   * the Lease, so another replica takes over while this one drains.
   */
  reportStatus(gateway: Gateway, log: SourceLog, target: StatusTarget): StatusReporting;
}

/**
 * The configuration source `--kubernetes` asks for: `serve` watches `--namespace` (or all) for the
 * Gateways of `--gateway-class`; `epp` watches one pool's namespace. A kubeconfig that cannot be
 * read is an OptionError (one line). The Kubernetes client is loaded here, on first use, and not
 * when the CLI starts (kubernetes-source.ts says what it costs).
 */
export async function kubernetesSource(options: KubernetesOptions, scope: ViewScope): Promise<KubernetesMode> {
  const { openKubernetesSource } = await import('./kubernetes-source.js');
  return openKubernetesSource(options, scope);
}
