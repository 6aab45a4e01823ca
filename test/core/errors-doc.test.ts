import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES } from '../../src/core/errors.js';

const DOC = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));

test('docs/errors.md lists every error code once, with the status and type the code has', async () => {
  const text = await readFile(DOC, 'utf8');
  // Codes never sent (a client that left) are documented as `499 (logged only)` with no type.
  const rows = [...text.matchAll(/^\| `([a-z_]+)` \| (\d{3})(?: \(logged only\))? \| ([a-z_]+|—) \|/gm)];
  const problems: string[] = [];
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    const found = rows.filter((r) => r[1] === code);
    if (found.length !== 1) problems.push(`${code}: ${found.length} rows`);
    else if (Number(found[0]?.[2]) !== spec.status || (found[0]?.[3] !== spec.type && !(spec.status === 499 && found[0]?.[3] === '—'))) problems.push(`${code}: documented ${found[0]?.[2]} ${found[0]?.[3]}, is ${spec.status} ${spec.type}`);
  }
  for (const r of rows) if (!(r[1] as string in ERROR_CODES)) problems.push(`${r[1]}: documented, not a code`);
  assert.deepEqual(problems, []);
});
