import { freePort, freePortOnAll } from '../../src/bench/suite/ports.js';
import { fleetHosts, gatewayAndRoute, type Context, type Fleet } from '../../src/bench/suite/systems.js';

/*
 * What the A/B scripts of bench/ share: a suite Context on free ports, and the one-pool gateway
 * configuration they all serve (a Gateway, an HTTPRoute to one InferencePool, the fleet's pods).
 */

/** A suite Context in `work` with free ports for the gateway, its admin port and the engines. */
export async function benchContext(work: string): Promise<Context> {
  return { work, log: () => undefined, nginx: undefined, seed: 1, frontPort: await freePort(), adminPort: await freePort(), simPort: await freePortOnAll(fleetHosts()), bootstrapPort: await freePortOnAll(fleetHosts()) };
}

/**
 * The YAML of a gateway on `ctx.frontPort` routing everything to one InferencePool `bench` over
 * `fleet`'s pods; `routingStrategy` sets the pool's routing-strategy annotation (DEFAULT when absent).
 */
export function benchGatewayYaml(ctx: Context, fleet: Fleet, routingStrategy?: string): string {
  const metadata = routingStrategy === undefined ? 'metadata: {name: bench}' : `metadata:\n  name: bench\n  annotations: {inference.networking.x-k8s.io/routing-strategy: ${routingStrategy}}`;
  return `${gatewayAndRoute(ctx.frontPort, '{group: inference.networking.k8s.io, kind: InferencePool, name: bench}')}---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
${metadata}
spec:
  selector: {matchLabels: {app: bench}}
  targetPorts: [{number: ${ctx.simPort}}]
---
${fleet.podsYaml}`;
}
