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

// Signals operators send out of habit must not open a door or kill a server without its drain.
// SIGUSR1 would start Node's debugger on 127.0.0.1:9229, where any local user could run code in the
// gateway (a listener turns that off); SIGUSR2's default action ends the process at once. Logs go
// to stdout, so there is nothing to reopen (nginx's USR1) and no binary to swap (its USR2).
// SIGHUP drains as SIGTERM does (src/cli/signals.ts).
const IGNORED = {
  SIGUSR1: "Node's debugger is not opened by signal; start with --inspect to debug",
  SIGUSR2: 'logs go to stdout, there is nothing to reopen; SIGTERM drains and stops',
};
for (const [signal, why] of Object.entries(IGNORED)) {
  process.on(signal, () => process.stderr.write(`infergate: ${signal} ignored (${why})\n`));
}

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
