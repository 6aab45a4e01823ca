#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm ci` (the `prepare` script).
import { setFlagsFromString } from 'node:v8';

// WebAssembly stays on V8's baseline compiler (Liftoff). The only WebAssembly here is undici's
// HTTP parser (llhttp), and V8's optimising tier-up of it took ~30 MiB of resident memory for half
// a second after the first upstream request, 10 MiB of which the allocator kept: a third of the
// gateway's memory under load, for no CPU saved (undici reading 512-event streams: 1.24 ms CPU a
// stream baseline-only against 1.31 ms with tier-up, medians of 5; bench/memory/rss-ab.ts). Set
// before any module is compiled; V8 reads it per WebAssembly compilation.
setFlagsFromString('--liftoff-only');

const { main } = await import('../dist/src/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
