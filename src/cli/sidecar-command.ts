import { access } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { parseArgs } from 'node:util';
import { FileConfigSource } from '../config/file-source.js';
import { ConfigRejectedError } from '../config/store.js';
import { Gateway } from '../gateway/index.js';
import { ListenError } from '../proxy/port-listener.js';
import { parseDecodeUrl } from '../sidecar/local-decode.js';
import { startSidecar, type RunningSidecar } from '../sidecar/server.js';
import { eppPool } from './epp-options.js';
import { durationOption, loggerOption, SERVER_FLAGS, OptionError, portOption } from './options.js';
import { untilSignal } from './signals.js';

export const SIDECAR_HELP = `infergate pd-sidecar: the prefill/decode sidecar beside one decode server, behind Envoy

The endpoint picker (infergate epp) sends a disaggregated request to the decode pod's sidecar and
names the prefill endpoint in x-prefiller-host-port. The sidecar checks that endpoint against the
pool's prefill pods (never an open relay), runs both legs with the gateway core's prefill/decode
machine (SGLang: both at once with the bootstrap fields; vLLM: prefill, then decode with
kv_transfer_params), the decode leg on the local server, and streams its answer back. Requests
without the header (scrapes, health checks, requests kept on this pod) pass through unchanged.

Usage:
  infergate pd-sidecar --decode-url URL --pool-name NAME -f FILE_OR_DIR [options]

Options:
  -f, --file PATH              YAML/JSON file or folder of resources: the same as the picker's (repeatable)
      --pool-name NAME         the InferencePool of this decode pod (its prefill pods are the allow-list)
      --pool-namespace NS      its namespace (default: env NAMESPACE, else "default")
      --decode-url URL         the local decode server, http://host:port (e.g. http://127.0.0.1:8200)
      --port N                 the port the sidecar listens on: the pool's target port (default 8000)
      --address ADDR           address to bind (default 0.0.0.0)
      --shutdown-grace T       time requests in flight get after SIGTERM/SIGINT (default 30s)
      --log-level LEVEL        fatal|error|warn|info|debug|trace|silent (default info)
      --log-format F           json (default) | pretty
      --exit-with-parent       stop when the process that started this one exits
`;

const DEFAULT_DRAIN_MS = 30_000;

/**
 * The decode URL names the sidecar's own listener: the same port on its bind address, on a
 * loopback address, or (bound to every interface) on any of this machine's addresses. Other loops
 * (through another sidecar) are caught per request by the `Via` check.
 */
function pointsAtItself(decode: URL, address: string, port: number): boolean {
  const decodePort = Number(decode.port || (decode.protocol === 'https:' ? 443 : 80));
  if (decodePort !== port) return false;
  const host = decode.hostname.replace(/^\[|\]$/g, '');
  if (host === address || host === 'localhost' || host.startsWith('127.') || host === '::1') return true;
  if (address !== '0.0.0.0' && address !== '::') return false;
  return Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === host) === true);
}

export async function runSidecarCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...SERVER_FLAGS,
      'pool-name': { type: 'string' },
      'pool-namespace': { type: 'string' },
      'decode-url': { type: 'string' },
      port: { type: 'string' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(SIDECAR_HELP);
    return 0;
  }
  if (values['pool-name'] === undefined) throw new OptionError('pd-sidecar needs --pool-name NAME: the InferencePool whose prefill pods it may send to');
  const pool = eppPool({ poolName: values['pool-name'], poolNamespace: values['pool-namespace'] });
  if (pool.kind !== 'pool') throw new OptionError('pd-sidecar needs --pool-name');
  if (values['decode-url'] === undefined) throw new OptionError('pd-sidecar needs --decode-url URL: the decode server beside it, e.g. http://127.0.0.1:8200');
  let decodeUrl: URL;
  try {
    decodeUrl = parseDecodeUrl(values['decode-url']);
  } catch (err) {
    throw new OptionError((err as Error).message);
  }
  const files = values.file ?? [];
  if (files.length === 0) throw new OptionError('pd-sidecar needs -f FILE_OR_DIR: the resources of its pool (see infergate pd-sidecar --help)');
  for (const f of files) {
    try {
      await access(f);
    } catch {
      throw new OptionError(`-f ${f}: no such file or folder`);
    }
  }
  const port = portOption('port', values.port, 8000, 0);
  const address = values.address ?? '0.0.0.0';
  if (pointsAtItself(decodeUrl, address, port)) throw new OptionError(`--decode-url ${decodeUrl.origin} is this sidecar's own address (--address ${address} --port ${port}): it must name the decode server beside it, on another port`);
  const drainMs = durationOption('shutdown-grace', values['shutdown-grace'], 0) ?? DEFAULT_DRAIN_MS;
  const logger = loggerOption(values);
  const poolKey = `${pool.namespace}/${pool.name}`;

  let gateway: Gateway | undefined;
  let sidecar: RunningSidecar | undefined;
  try {
    try {
      // No scraping and no model lists: the sidecar never schedules, it checks and carries.
      gateway = await Gateway.start({ sources: [new FileConfigSource(files, { watch: true })], logger, scrapeIntervalMs: 0 });
    } catch (err) {
      if (err instanceof ConfigRejectedError) {
        process.stderr.write(`${err.message}\n`);
        return 1;
      }
      throw err;
    }
    if (gateway.runtime?.pools.has(poolKey) !== true) logger.warn({ pool: poolKey }, 'the InferencePool of this sidecar is not in its configuration: prefill requests get 503 pool_not_found until it appears');
    try {
      sidecar = await startSidecar({ gateway, poolKey, decodeUrl, decodeName: process.env['POD_NAME'] ?? hostname(), address, port, logger });
    } catch (err) {
      throw new ListenError('sidecar port', address, port, err);
    }
    logger.info({ pool: poolKey, port: sidecar.port, decode: decodeUrl.origin }, 'pd sidecar started');
    const cause = await untilSignal({ followParent: values['exit-with-parent'] === true });
    logger.info({ signal: cause }, 'shutting down');
    return 0;
  } finally {
    await sidecar?.close(drainMs);
    await gateway?.close();
  }
}
