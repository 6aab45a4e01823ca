import { createServer } from 'node:net';

/*
 * Free ports for the suite's processes: two runs on one machine (or a run beside the tests) must
 * not fight over fixed ones. A port is free when the OS lets us bind it; it is released at once,
 * so a process started a moment later can take it.
 */

/** A port that was free on `host` a moment ago (the OS picks it). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A port free on every one of `hosts` a moment ago: for servers that listen on one port on
 * several addresses, like pods on their own IPs (and SGLang prefill servers sharing the traffic
 * policy's bootstrap port). Throws after 50 tries.
 */
export async function freePortOnAll(hosts: readonly string[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort(hosts[0]);
    if ((await Promise.all(hosts.slice(1).map((h) => canBind(h, port)))).every(Boolean)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}
