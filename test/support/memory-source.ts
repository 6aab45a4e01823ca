import { Writable } from 'node:stream';
import { parseDocuments } from '../../src/api/index.js';
import type { ApplyOutcome, ConfigBatch, ConfigSink, ConfigSource } from '../../src/config/source.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';

/** A configuration source held in memory: `set(yaml)` delivers a new whole state, as a file reload would. */
export class MemorySource implements ConfigSource {
  readonly name = 'memory';
  #yaml: string;
  #sink: ConfigSink | undefined;

  constructor(yaml: string) {
    this.#yaml = yaml;
  }

  start(sink: ConfigSink): Promise<ApplyOutcome> {
    this.#sink = sink;
    return this.resync();
  }

  resync(): Promise<ApplyOutcome> {
    const sink = this.#sink;
    if (sink === undefined) throw new Error('not started');
    const loaded = parseDocuments(this.#yaml, 'memory.yaml');
    return sink({ upserts: loaded.resources, deletes: [], replace: true, problems: loaded.problems, ignored: loaded.ignored.length });
  }

  set(yaml: string): Promise<ApplyOutcome> {
    this.#yaml = yaml;
    return this.resync();
  }

  /**
   * Delivers one batch as is (a Kubernetes watch event: upserts and deletes, `replace: false`).
   * The YAML `set` keeps is not updated: a later `set` or `resync` replaces whatever came here.
   */
  apply(batch: Partial<ConfigBatch>): Promise<ApplyOutcome> {
    const sink = this.#sink;
    if (sink === undefined) throw new Error('not started');
    return sink({ upserts: [], deletes: [], replace: false, problems: [], ignored: 0, ...batch });
  }

  async stop(): Promise<void> {}
}

export type LogRecord = Record<string, unknown> & { msg?: string };

/** A logger whose JSON lines are collected in `lines`. */
export function memoryLogger(): { logger: Logger; lines: LogRecord[] } {
  const lines: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { logger: createLogger('info', sink), lines };
}
