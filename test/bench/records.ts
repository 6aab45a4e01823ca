import type { RequestRecord } from '../../src/bench/runner.js';

/** A synthetic successful record; override what the test is about. */
export function record(over: Partial<RequestRecord> & { seq: number }): RequestRecord {
  return {
    model: 'm',
    stage: 0,
    queuedMs: 0,
    startMs: 0,
    endMs: 100,
    ttftMs: 10,
    itlMs: [],
    e2eMs: 100,
    promptTokens: 10,
    outputTokens: 5,
    outputTokensSource: 'usage',
    status: 200,
    ok: true,
    errorKind: undefined,
    errorCode: undefined,
    errorMessage: undefined,
    endpoint: 'pod-a',
    text: 'answer',
    ...over,
  };
}
