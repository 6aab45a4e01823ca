/**
 * Several simulated servers in one process, laid out like pods: consecutive loopback hosts
 * (127.0.0.2, 127.0.0.3, …) sharing one port — Linux routes all of 127.0.0.0/8 without setup —
 * or, with `portStep`, one host and consecutive ports. They share one modelled clock.
 */
import { SimClock } from './engine/index.js';
import { stepKvEvents } from './kv-events/config.js';
import { DEFAULT_SIDE_CHANNEL_PORT } from './nixl.js';
import { DEFAULT_BOOTSTRAP_PORT } from './pd.js';
import type { PdRole } from './pd-leg.js';
import { startSimServer, type RunningSimServer, type SimServerOptions } from './server.js';

/** 127.0.0.2 + 1 = 127.0.0.3, carrying into the next octet. */
export function nextAddress(ip: string, offset: number): string {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new RangeError(`host must be an IPv4 address (got "${ip}")`);
  const n = ((parts[0] ?? 0) * 2 ** 24 + (parts[1] ?? 0) * 2 ** 16 + (parts[2] ?? 0) * 2 ** 8 + (parts[3] ?? 0) + offset) >>> 0;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** What a Pod resource needs from a server. */
export interface PodSource {
  readonly name: string;
  readonly host: string;
  readonly pdRole?: PdRole | undefined;
  readonly bootstrapPort?: number | undefined;
}

/**
 * Pod resources for the servers (labels + `status.podIP`), as `kubectl get pods -o yaml` prints
 * them, in a `kind: List`. An SGLang prefill server's bootstrap port is in the annotation
 * `sglang.ai/bootstrap-port`, where SGLang's router looks for it in Kubernetes. With `roleLabel`,
 * a server with a PD role carries it as that label's value (`prefill` / `decode`), as a
 * RoleBasedGroup labels its pods (`rolebasedgroup.workloads.x-k8s.io/role`).
 */
export function podsYaml(servers: readonly PodSource[], labels: Readonly<Record<string, string>>, roleLabel?: string): string {
  const items = servers.map((s) => {
    const own = roleLabel === undefined || s.pdRole === undefined ? labels : { ...labels, [roleLabel]: s.pdRole };
    const labelLines = Object.entries(own)
      .map(([k, v]) => `      ${JSON.stringify(k)}: ${JSON.stringify(v)}`)
      .join('\n');
    const annotations = s.pdRole === 'prefill' && s.bootstrapPort !== undefined ? `\n    annotations:\n      "sglang.ai/bootstrap-port": "${s.bootstrapPort}"` : '';
    const labelBlock = labelLines === '' ? ' {}' : `\n${labelLines}`;
    return `- apiVersion: v1
  kind: Pod
  metadata:
    name: ${JSON.stringify(s.name)}
    labels:${labelBlock}${annotations}
  status:
    phase: Running
    podIP: ${s.host}`;
  });
  return `apiVersion: v1\nkind: List\nitems:\n${items.join('\n')}\n`;
}

export interface SimFleetOptions extends Omit<SimServerOptions, 'host' | 'name' | 'port'> {
  /** First host; default 127.0.0.2. */
  host?: string;
  /** Port of every replica (hosts layout) or of the first (ports layout); default 8000. */
  port?: number;
  replicas: number;
  /** Pod names `<prefix>-0`, `<prefix>-1`, …; default 'sim'. */
  namePrefix?: string;
  /** 0 (default): one host per replica, same port. N > 0: same host, ports `port + i·N`. */
  portStep?: number;
  /** A PD role per replica (replica i gets `pdRoles[i]`, none past the list's end); overrides `pdRole`. */
  pdRoles?: readonly PdRole[];
}

export interface SimFleet {
  readonly servers: RunningSimServer[];
  /** Pod resources (a `kind: List`) with these labels (and each PD role as `roleLabel`'s value). */
  podsYaml(labels: Record<string, string>, roleLabel?: string): string;
  close(): Promise<void>;
}

/** Starts `replicas` servers (see the file comment); on failure the ones started are closed. */
export async function startSimFleet(options: SimFleetOptions): Promise<SimFleet> {
  const { host = '127.0.0.2', port = 8000, replicas, namePrefix = 'sim', portStep = 0, pdRoles, pdRole, ...common } = options;
  if (pdRoles !== undefined && pdRoles.length > replicas) throw new RangeError(`pdRoles has ${pdRoles.length} roles for ${replicas} replicas`);
  if (!Number.isInteger(replicas) || replicas < 1) throw new RangeError(`replicas must be an integer >= 1, got ${replicas}`);
  if (!Number.isInteger(portStep) || portStep < 0) throw new RangeError(`portStep must be an integer >= 0, got ${portStep}`);
  const ownsClock = common.clock === undefined;
  const clock = common.clock ?? new SimClock({ timeScale: common.timeScale ?? 1 });
  const servers: RunningSimServer[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.close()));
    if (ownsClock) clock.close();
  };
  try {
    for (let i = 0; i < replicas; i++) {
      const step = portStep > 0 && port !== 0 ? i * portStep : 0;
      const role = pdRoles === undefined ? pdRole : pdRoles[i];
      // A prefill server's side port (SGLang bootstrap, vLLM NIXL side channel) steps with the replica on one host.
      const sidePort = (given: number | undefined, fallback: number): number => {
        const p = given ?? fallback;
        return p === 0 ? 0 : p + (portStep > 0 ? i * portStep : 0);
      };
      servers.push(
        await startSimServer({
          ...common,
          clock,
          name: `${namePrefix}-${i}`,
          host: portStep > 0 ? host : nextAddress(host, i),
          port: port + step,
          ...(role === undefined ? {} : { pdRole: role }),
          ...(common.kvEvents === undefined ? {} : { kvEvents: stepKvEvents(common.kvEvents, i, portStep) }),
          ...(role === 'prefill'
            ? { bootstrapPort: sidePort(common.bootstrapPort, DEFAULT_BOOTSTRAP_PORT), sideChannelPort: sidePort(common.sideChannelPort, DEFAULT_SIDE_CHANNEL_PORT) }
            : {}),
        }),
      );
    }
  } catch (err) {
    await close();
    throw err;
  }
  return {
    servers,
    podsYaml: (labels, roleLabel) => podsYaml(servers, labels, roleLabel),
    close,
  };
}
