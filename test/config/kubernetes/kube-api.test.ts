import assert from 'node:assert/strict';
import type { RequestOptions } from 'node:https';
import { test } from 'node:test';
import { ApiConnection } from '../../../src/config/kubernetes/connection.js';
import { connectionKubeApi } from '../../../src/config/kubernetes/kube-api.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';

test('a KubeApi over the API connection asks for the Authorization header on every call (rotating tokens); without it the server refuses', async () => {
  const server = await FakeApiServer.start({ token: 'rotating-2' });
  let calls = 0;
  const kc = {
    getCurrentCluster: () => ({ server: server.url, skipTLSVerify: true }),
    applyToHTTPSOptions: async (opts: RequestOptions) => {
      calls++;
      // A token that rotates: the first one has expired (the server takes only the second), and
      // the second stays valid from then on.
      opts.headers = { ...(opts.headers ?? {}), Authorization: `Bearer rotating-${Math.min(calls, 2)}` };
    },
  };
  const connection = new ApiConnection(kc);
  const api = connectionKubeApi(connection);
  const anonymousConnection = new ApiConnection({ getCurrentCluster: () => ({ server: server.url }), applyToHTTPSOptions: async () => undefined });
  const anonymous = connectionKubeApi(anonymousConnection);
  try {
    assert.equal((await api.get('/apis/coordination.k8s.io/v1/namespaces/default/leases/none')).status, 401, 'the expired token is refused');
    // The next call asks for credentials again and gets the rotated token.
    const read = await api.get('/apis/coordination.k8s.io/v1/namespaces/default/leases/none');
    assert.equal(read.status, 404);
    assert.equal((read.body as { reason?: string }).reason, 'NotFound');
    const created = await api.post('/apis/coordination.k8s.io/v1/namespaces/default/leases', { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l' }, spec: {} });
    assert.equal(created.status, 201);
    assert.equal(calls, 3, 'credentials applied per call');
    assert.equal((await anonymous.get('/apis/coordination.k8s.io/v1/namespaces/default/leases/l')).status, 401);
  } finally {
    await connection.close();
    await anonymousConnection.close();
    await server.close();
  }
});

test('credentials that never come (an exec plugin waiting for a login) fail the request at its headers timeout, with a reason', async () => {
  const connection = new ApiConnection({ getCurrentCluster: () => ({ server: 'http://127.0.0.1:9' }), applyToHTTPSOptions: () => new Promise<void>(() => undefined) });
  try {
    await assert.rejects(connection.get('/api/v1/pods', {}, new AbortController().signal, { headersMs: 200, bodyMs: 200 }), /credentials did not come within 200 ms/);
    // And a stop (the reflector's abort) ends the wait at once.
    const abort = new AbortController();
    const pending = connection.get('/api/v1/pods', {}, abort.signal, { headersMs: 60_000, bodyMs: 60_000 });
    abort.abort(new Error('stopped'));
    await assert.rejects(pending, /stopped/);
  } finally {
    await connection.close();
  }
});
