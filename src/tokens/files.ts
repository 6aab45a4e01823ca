/**
 * Reading a model's tokenizer files within bounds: a cluster mounts them (a ConfigMap, a PVC, an
 * init container's download), so they are trusted to be what they say but not to be small.
 */

import { open } from 'node:fs/promises';
import { TokenizerLoadError } from './errors.js';

/**
 * Default byte bounds. tokenizer.json is the vocabulary and merges: Llama 3's is 9 MB, Qwen2.5's
 * 7 MB, Gemma's 34 MB; 64 MiB leaves room. tokenizer_config.json holds the chat template and the
 * added tokens' table (Llama 3's: 51 KB); 8 MiB is generous.
 */
export const TOKENIZER_FILE_LIMITS = {
  tokenizerJsonBytes: 64 * 1024 * 1024,
  tokenizerConfigBytes: 8 * 1024 * 1024,
} as const;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads `path` (at most `maxBytes`) and parses it as a JSON object.
 * @throws TokenizerLoadError naming `path`: missing, not a file, over the bound, not UTF-8, not
 *   JSON, or not an object.
 */
export async function readJsonObject(path: string, maxBytes: number): Promise<Record<string, unknown>> {
  let text: string;
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new TokenizerLoadError(path, code === 'ENOENT' ? 'no such file' : `cannot open (${code ?? String(err)})`);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new TokenizerLoadError(path, 'not a regular file');
    if (stat.size > maxBytes) {
      throw new TokenizerLoadError(path, `${stat.size} bytes, over the limit of ${maxBytes} bytes`);
    }
    // Read one byte past the bound: a file that grows between stat and read is still refused.
    const buf = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buf.length) break;
    }
    if (filled > maxBytes) throw new TokenizerLoadError(path, `over the limit of ${maxBytes} bytes`);
    try {
      text = utf8.decode(buf.subarray(0, filled));
    } catch {
      throw new TokenizerLoadError(path, 'not valid UTF-8');
    }
  } finally {
    await handle.close();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new TokenizerLoadError(path, `not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TokenizerLoadError(path, 'not a JSON object');
  }
  return value as Record<string, unknown>;
}
