import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { HTTP2_PREFACE, sniffProtocol } from '../../src/proxy/sniff.js';

/** Sends `pieces` (one write each, waiting in between) and returns what the sniffer decided and what the chosen side then reads. */
async function sniff(pieces: readonly Buffer[]): Promise<{ protocol: string; bytes: string }> {
  const decided = new Promise<{ protocol: string; socket: Socket }>((resolve) => {
    const server = createServer((socket) => {
      sniffProtocol(socket, 5_000, (protocol) => {
        server.close();
        resolve({ protocol, socket });
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      const client = connect(port, '127.0.0.1', () => {
        void (async () => {
          for (const p of pieces) {
            client.write(p);
            // Let each piece arrive on its own.
            await new Promise((r) => setTimeout(r, 20));
          }
          client.end();
        })();
      });
    });
  });
  const { protocol, socket } = await decided;
  // The sniffed bytes were put back: the side that takes the socket reads from the first byte.
  let bytes = '';
  socket.setEncoding('latin1').on('data', (c: string) => (bytes += c));
  socket.resume();
  await once(socket, 'end');
  socket.destroy();
  return { protocol, bytes };
}

test('sniff: the HTTP/2 preface, even one byte at a time, is h2c; every byte is kept', async () => {
  const frames = Buffer.from('\x00\x00\x00\x04\x00\x00\x00\x00\x00', 'latin1');
  const bytes = [...HTTP2_PREFACE].map((b) => Buffer.from([b]));
  const r = await sniff([...bytes, frames]);
  assert.equal(r.protocol, 'h2');
  assert.equal(r.bytes, HTTP2_PREFACE.toString('latin1') + frames.toString('latin1'));
});

test('sniff: an HTTP/1.1 request is decided by its first bytes, even one that starts like the preface', async () => {
  for (const line of ['POST /v1/completions HTTP/1.1\r\n', 'PRI-NOT-QUITE / HTTP/1.1\r\n', 'GET / HTTP/1.1\r\n']) {
    const r = await sniff([Buffer.from(line.slice(0, 1)), Buffer.from(line.slice(1)), Buffer.from('Host: x\r\n\r\n')]);
    assert.equal(r.protocol, 'h1', line);
    assert.equal(r.bytes, `${line}Host: x\r\n\r\n`);
  }
});
