import { SimClock, startSimServer, type RunningSimServer, type SimServerOptions } from '../../src/sim/index.js';
import { freePort } from './ports.js';

/**
 * One simulated model server of a test fleet. Defaults keep tests fast: the `tiny` profile (4 ms
 * decode steps, 1024-token context) at time scale 10, runtime vLLM V1, model `mymodel`.
 */
export interface FleetMember extends Omit<SimServerOptions, 'host' | 'port' | 'name' | 'model' | 'clock'> {
  readonly host: string;
  readonly name: string;
  /** Served model names; default ['mymodel']. */
  readonly models?: readonly string[];
}

/** Default time scale of fleet members (modelled time runs 10× faster than real time). */
export const FLEET_TIME_SCALE = 10;

/**
 * Starts simulated servers on several loopback addresses sharing one port, like pods on their own
 * IPs. The port is probed free on 127.0.0.1; on a clash elsewhere it tries another. Members
 * without their own `timeScale` share one clock.
 */
export async function startFleet(members: readonly FleetMember[]): Promise<{ port: number; servers: Map<string, RunningSimServer>; close: () => Promise<void> }> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const clock = new SimClock({ timeScale: FLEET_TIME_SCALE });
    const started: RunningSimServer[] = [];
    const close = async (): Promise<void> => {
      await Promise.all(started.map((s) => s.close()));
      clock.close();
    };
    try {
      for (const m of members) {
        const { models, timeScale, ...rest } = m;
        started.push(
          await startSimServer({
            profile: 'tiny',
            ...rest,
            model: models ?? ['mymodel'],
            port,
            ...(timeScale === undefined ? { clock } : { timeScale }),
          }),
        );
      }
      const servers = new Map(started.map((s) => [s.name, s]));
      return { port, servers, close };
    } catch (err) {
      await close();
      if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('could not find a port free on every fleet address');
}

/**
 * Seed 003's model servers, as its vLLM flags start them: two Qwen pods serving `mymodel` with
 * adapters travel-helper-v1 and -v2 (`--enable-lora --max-loras 2 --lora-modules …`) and one
 * DeepSeek pod serving `mymodel` alone, on `hosts` (qwen-0, qwen-1, then the DeepSeek pod, named
 * `deepseekName`), plus any `extra` members.
 */
export function startSeed003Fleet(hosts: readonly [string, string, string], deepseekName: string, extra: readonly FleetMember[] = []): ReturnType<typeof startFleet> {
  const adapters = { models: ['mymodel'], loras: ['travel-helper-v1', 'travel-helper-v2'], maxLoras: 2 };
  return startFleet([
    { host: hosts[0], name: 'qwen-0', ...adapters },
    { host: hosts[1], name: 'qwen-1', ...adapters },
    { host: hosts[2], name: deepseekName, models: ['mymodel'] },
    ...extra,
  ]);
}
