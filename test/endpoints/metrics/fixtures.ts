import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The metric fixtures folder (`test/fixtures/metrics/`). In the real build this file compiles to
 * `dist/test/endpoints/metrics/fixtures.js`, four levels below the repository root. A build with
 * another `outDir` can point at the folder with `INFERGATE_METRICS_FIXTURES`, or run from the
 * repository root.
 */
export const FIXTURE_DIR: string = findFixtureDir();

function findFixtureDir(): string {
  const candidates = [
    process.env['INFERGATE_METRICS_FIXTURES'],
    fileURLToPath(new URL('../../../../test/fixtures/metrics/', import.meta.url)),
    resolve(process.cwd(), 'test/fixtures/metrics'),
  ];
  for (const dir of candidates) {
    if (dir !== undefined && dir !== '' && existsSync(join(dir, 'README.md'))) return dir;
  }
  throw new Error(`metric fixtures not found; tried ${candidates.filter(Boolean).join(', ')}`);
}

/** The published samples (see the folder's README.md). */
export const FIXTURES = [
  'vllm-v1-docs.txt',
  'vllm-v0-lines.txt',
  'vllm-lora-info.txt',
  'sglang-docs.txt',
  'triton-trtllm-docs.txt',
] as const;

export type FixtureName = (typeof FIXTURES)[number];

export function readFixture(name: FixtureName): string {
  return readFileSync(join(FIXTURE_DIR, name), 'utf8');
}

/** The metrics without `servedModels` (asserted on its own in extract-fixtures.test.ts). */
export function numeric<T extends object | undefined>(m: T): T {
  if (m === undefined) return m;
  const { servedModels: _served, ...rest } = m as T & { servedModels?: unknown };
  return rest as T;
}
