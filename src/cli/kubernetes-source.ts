import { ApiConnection, KubeConfigError, loadKubeConfig } from '../config/kubernetes/connection.js';
import type { KubernetesOptions } from '../config/kubernetes/options.js';
import { connectionKubeApi } from '../config/kubernetes/kube-api.js';
import { KubernetesSource } from '../config/kubernetes/source.js';
import { startStatusReporting } from '../config/kubernetes/status-reporting.js';
import type { ViewScope } from '../config/kubernetes/view.js';
import type { KubernetesMode } from './kubernetes-options.js';
import { OptionError } from './options.js';

/*
 * The `--kubernetes` path's code, imported only when that flag is given (kubernetes-options.ts's
 * `kubernetesSource`): @kubernetes/client-node alone is ~70 MiB of resident memory once loaded
 * (its generated API modules' source text and code), which a gateway configured from files must
 * not pay (bench/memory/rss-ab.ts).
 */

/**
 * The configuration source `--kubernetes` asks for: `serve` watches `--namespace` (or all) for the
 * Gateways of `--gateway-class`; `epp` watches one pool's namespace. A kubeconfig that cannot be
 * read is an OptionError (one line).
 */
export function openKubernetesSource(options: KubernetesOptions, scope: ViewScope): KubernetesMode {
  let connection: ApiConnection;
  try {
    connection = new ApiConnection(loadKubeConfig(options.kubeconfig).config);
  } catch (err) {
    if (err instanceof KubeConfigError) throw new OptionError(err.message);
    throw err;
  }
  const source = new KubernetesSource({ connection, namespace: options.allNamespaces ? undefined : options.namespace, scope });
  return {
    source,
    reportStatus: (gateway, log, target) =>
      startStatusReporting(
        {
          api: connectionKubeApi(connection),
          identity: options.identity,
          leaseName: options.leaseName,
          namespace: options.namespace,
          log,
          ...(target.mode === 'gateway' ? { mode: 'gateway', gatewayClass: options.gatewayClass } : { mode: 'epp', poolName: target.poolName, poolNamespace: target.poolNamespace }),
        },
        () => gateway.configResources(),
        (changed) => gateway.afterSwap(() => changed()),
      ),
  };
}
