import { OptionError } from './options.js';

/** Which pool the picker serves: one named InferencePool, or pods picked by labels (upstream's standalone mode). */
export type EppPool =
  | { readonly kind: 'pool'; readonly name: string; readonly namespace: string }
  | { readonly kind: 'selector'; readonly selector: Readonly<Record<string, string>>; readonly targetPorts: readonly number[]; readonly namespace: string };

/** Upstream's limit on `--endpoint-target-ports` (GIE pkg/epp/server/options.go: 1–8, one endpoint per port: data-parallel ranks). */
export const MAX_TARGET_PORTS = 8;

/** Kubernetes label key: optional DNS prefix + `/` + name of 1–63 `[A-Za-z0-9._-]`, alphanumeric at both ends. */
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
/** Kubernetes label value: empty, or 1–63 `[A-Za-z0-9._-]`, alphanumeric at both ends. */
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** `--endpoint-selector app=vllm,tier=gpu` as a label map; each key once. */
export function parseEndpointSelector(value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const key = (eq < 0 ? part : part.slice(0, eq)).trim();
    const v = eq < 0 ? undefined : part.slice(eq + 1).trim();
    if (v === undefined || !LABEL_KEY.test(key) || !LABEL_VALUE.test(v)) throw new OptionError(`--endpoint-selector must be label=value pairs joined by commas, e.g. app=vllm,tier=gpu (got "${part}")`);
    if (key in out) throw new OptionError(`--endpoint-selector names label "${key}" twice`);
    out[key] = v;
  }
  return out;
}

/** `--endpoint-target-ports 8000,8001`: 1–8 distinct ports. */
export function parseTargetPorts(value: string): number[] {
  const ports = value.split(',').map((p) => p.trim());
  const out: number[] = [];
  for (const p of ports) {
    const n = Number(p);
    if (p === '' || !Number.isInteger(n) || n < 1 || n > 65535) throw new OptionError(`--endpoint-target-ports must be ports (1-65535) joined by commas (got "${p}")`);
    if (out.includes(n)) throw new OptionError(`--endpoint-target-ports lists ${n} twice`);
    out.push(n);
  }
  if (out.length > MAX_TARGET_PORTS) throw new OptionError(`--endpoint-target-ports takes at most ${MAX_TARGET_PORTS} ports (got ${out.length})`);
  return out;
}

/**
 * The pool flags as an EppPool: exactly one of `--pool-name` and `--endpoint-selector`;
 * `--endpoint-target-ports` goes with (and is required by) the selector. The namespace is
 * `--pool-namespace`, else env `NAMESPACE`, else `default` (upstream's order).
 */
export function eppPool(values: { poolName?: string; poolNamespace?: string; selector?: string; targetPorts?: string }, env: NodeJS.ProcessEnv = process.env): EppPool {
  const namespace = values.poolNamespace ?? (env['NAMESPACE'] !== undefined && env['NAMESPACE'] !== '' ? env['NAMESPACE'] : 'default');
  if (values.poolName !== undefined && values.selector !== undefined) throw new OptionError('use either --pool-name or --endpoint-selector, not both');
  if (values.poolName !== undefined) {
    if (values.targetPorts !== undefined) throw new OptionError('--endpoint-target-ports goes with --endpoint-selector; a pool names its own targetPorts');
    if (values.poolName.trim() === '') throw new OptionError('--pool-name must not be empty');
    return { kind: 'pool', name: values.poolName, namespace };
  }
  if (values.selector !== undefined) {
    if (values.targetPorts === undefined) throw new OptionError('--endpoint-selector needs --endpoint-target-ports (the ports the selected pods serve on)');
    return { kind: 'selector', selector: parseEndpointSelector(values.selector), targetPorts: parseTargetPorts(values.targetPorts), namespace };
  }
  throw new OptionError('epp needs --pool-name NAME (the InferencePool it serves) or --endpoint-selector k=v with --endpoint-target-ports (see infergate epp --help)');
}
