import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ACTIVE_PORTS_ANNOTATION, BOOTSTRAP_PORT_ANNOTATION } from '../../../src/api/types.js';
import { convertObject } from '../../../src/config/kubernetes/objects.js';
import type { RawObject } from '../../../src/config/kubernetes/reflector.js';
import { POD } from '../../../src/config/kubernetes/watched-kinds.js';
import { podObj } from '../../support/kube.js';

/* API objects → Resources: what a Pod from the API server keeps. */

describe('Kubernetes objects', () => {
  test("a Pod's annotations that nothing reads are dropped, so another controller's annotation neither refuses it nor weighs on memory", () => {
    const raw = podObj('p', { app: 'sim' }, '10.0.0.1') as RawObject;
    raw.metadata['annotations'] = {
      // Another controller's annotation under a prefix the loader checks for typos.
      'inference.networking.k8s.io/scheduled-by': 'someone-else',
      'kubectl.kubernetes.io/last-applied-configuration': 'x'.repeat(200 * 1024),
      [ACTIVE_PORTS_ANNOTATION]: '8000',
      [BOOTSTRAP_PORT_ANNOTATION]: '8998',
    };
    const { resource, problems } = convertObject(POD, raw);
    assert.deepEqual(problems.filter((p) => p.severity === 'error'), []);
    assert.equal(resource?.kind, 'Pod');
    assert.deepEqual(resource.metadata.annotations, { [ACTIVE_PORTS_ANNOTATION]: '8000', [BOOTSTRAP_PORT_ANNOTATION]: '8998' });
  });
});
