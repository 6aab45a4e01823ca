import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Heap plus Buffers (network frames are Buffers outside the heap), bytes. */
export function memory(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** A full garbage collection, exposing `gc` when the process was started without --expose-gc. */
export function exposeGc(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) return g;
  v8.setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}
