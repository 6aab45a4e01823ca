import { basename } from 'node:path';

/*
 * The parts of V8's `.cpuprofile` format (what `node --cpu-prof` writes) the profile scripts read:
 * a tree of nodes, each with its function, and per sample the node that was running and the time
 * since the previous sample (microseconds).
 */

export interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  /** 0-based. */
  readonly lineNumber: number;
}

export interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  /** When profiling began, microseconds on the process's monotonic clock. */
  readonly startTime: number;
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A function's key: its name and where it is (file basename and 1-based line). */
export function functionKey(f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  return f.url === '' ? name : `${name} ${basename(f.url)}:${f.lineNumber + 1}`;
}
