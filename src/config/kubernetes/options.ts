import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * What `--kubernetes` and its flags ask for (src/cli/kubernetes-options.ts reads them), shared by
 * the config source, the status writer and the Lease.
 */
export interface KubernetesOptions {
  /** `--kubeconfig PATH`; absent: in-cluster config, else $KUBECONFIG / ~/.kube/config. */
  kubeconfig?: string;
  /** `--namespace NS`: the namespace watched (unless `allNamespaces`) and the Lease's. */
  namespace: string;
  /** `--all-namespaces`: watch every namespace (serve only). */
  allNamespaces: boolean;
  /** `--gateway-class NAME`: the GatewayClass whose Gateways this gateway serves (serve only). */
  gatewayClass: string;
  /** `--lease-name NAME`: the Lease that elects the replica writing status. */
  leaseName: string;
  /** This replica's name in the Lease: $POD_NAME, else the hostname. */
  identity: string;
}

/** The controllerName a GatewayClass names for this gateway to serve its Gateways (Gateway API GatewayClass spec.controllerName: `domain/path`). */
export const CONTROLLER_NAME = 'infergate.dev/gateway-controller';

/** `--gateway-class` default. */
export const DEFAULT_GATEWAY_CLASS = 'infergate';

/** `--lease-name` default for `serve`; `epp` uses `<pool-name>-epp`. */
export const DEFAULT_SERVE_LEASE = 'infergate-status';

/** Where a pod's service account namespace is mounted (Kubernetes docs, "Accessing the API from a Pod"). */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

/** `--namespace` default: the pod's own namespace when running in a pod, else `default`. */
export function defaultNamespace(file = SERVICE_ACCOUNT_NAMESPACE_FILE): string {
  try {
    const ns = readFileSync(file, 'utf8').trim();
    if (ns !== '') return ns;
  } catch {
    // not in a pod
  }
  return 'default';
}

/** This replica's identity: $POD_NAME (the Downward API), else the hostname. */
export function defaultIdentity(env: NodeJS.ProcessEnv = process.env): string {
  const pod = env['POD_NAME'];
  return pod !== undefined && pod !== '' ? pod : hostname();
}
