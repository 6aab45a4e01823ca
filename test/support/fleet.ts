import { startEchoServer, type EchoServerOptions, type RunningEchoServer } from '../../src/sim/index.js';
import { freePort } from './ports.js';

export interface FleetMember extends Omit<EchoServerOptions, 'host' | 'port'> {
  readonly host: string;
  readonly name: string;
}

/**
 * Starts echo servers on several loopback addresses sharing one port, like pods on their own
 * IPs. The port is probed free on 127.0.0.1; on a clash elsewhere it tries another.
 */
export async function startFleet(members: readonly FleetMember[]): Promise<{ port: number; servers: Map<string, RunningEchoServer>; close: () => Promise<void> }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const started: RunningEchoServer[] = [];
    try {
      for (const m of members) started.push(await startEchoServer({ ...m, port }));
      const servers = new Map(started.map((s) => [s.name, s]));
      return { port, servers, close: async () => void (await Promise.all(started.map((s) => s.close()))) };
    } catch (err) {
      await Promise.all(started.map((s) => s.close()));
      if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('could not find a port free on every fleet address');
}
