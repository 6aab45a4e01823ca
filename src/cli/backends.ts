/**
 * The `--backend URL` quick start as the resources it stands for: one Gateway listener, one
 * HTTPRoute for everything, one InferencePool whose target ports are the backends' ports, and one
 * Pod per backend limited to its own port by the `active-ports` annotation. Rendering YAML (and
 * loading it like any file) keeps one validation path and lets `--print-config` show users the
 * equivalent configuration to start editing from.
 */
export function backendsYaml(urls: readonly string[], port: number): string {
  const backends = urls.map((raw, i) => {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new Error(`--backend ${raw}: not a URL (expected http://HOST:PORT)`);
    }
    if (url.protocol !== 'http:') throw new Error(`--backend ${raw}: only http:// backends are supported`);
    if (url.pathname !== '/' && url.pathname !== '') throw new Error(`--backend ${raw}: a path is not supported; give http://HOST:PORT`);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    return { name: `backend-${i}`, host, port: url.port === '' ? 80 : Number(url.port) };
  });
  if (backends.length === 0) throw new Error('at least one --backend is required');
  const ports = [...new Set(backends.map((b) => b.port))];
  const docs = [
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: infergate
spec:
  gatewayClassName: infergate
  listeners:
  - name: http
    protocol: HTTP
    port: ${port}`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: all
spec:
  parentRefs:
  - name: infergate
  rules:
  - backendRefs:
    - group: inference.networking.k8s.io
      kind: InferencePool
      name: backends`,
    `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: backends
spec:
  selector:
    matchLabels:
      infergate.dev/backend: "true"
  targetPorts:
${ports.map((p) => `  - number: ${p}`).join('\n')}`,
    ...backends.map(
      (b) => `apiVersion: v1
kind: Pod
metadata:
  name: ${b.name}
  labels:
    infergate.dev/backend: "true"
  annotations:
    inference.networking.k8s.io/active-ports: "${b.port}"
status:
  phase: Running
  podIP: ${JSON.stringify(b.host)}`,
    ),
  ];
  return `${docs.join('\n---\n')}\n`;
}
