import { fileURLToPath } from 'node:url';
import type { RunningSimServer, SimServerOptions } from '../sim/index.js';

/** A simulated pod of an example and what it runs. */
export interface DemoEngine {
  readonly name: string;
  /** Default address (the Pod's podIP in the example's files); `--sim-hosts` moves it. */
  readonly host: string;
  readonly options: Omit<SimServerOptions, 'host' | 'port' | 'name' | 'clock'>;
}

/** What an example's banner may mention. */
export interface BannerContext {
  /** The gateway's base URL, e.g. http://127.0.0.1:8080. */
  readonly base: string;
  /** The admin server's base URL. */
  readonly admin: string;
  /** The running simulated servers, in the order of `DemoExample.engines`. */
  readonly engines: readonly RunningSimServer[];
}

/** One example the demo can run: the files it loads, its pods, and what to try. */
export interface DemoExample {
  /** Files and folders the gateway loads (and watches), in order. */
  readonly paths: readonly string[];
  readonly engines: readonly DemoEngine[];
  /** The lines printed once everything runs. */
  banner(ctx: BannerContext): string;
}

/** The repository's `examples/` folder, or a path inside it (`examples/<rel>`). */
export const examplePath = (rel: string): string => fileURLToPath(new URL(`../../../examples/${rel}`, import.meta.url));

/** The model seed 002's clients ask for; its servers are started with this path and no other served name. */
export const QWEN3_32B = '/models/Qwen3-32B';
