import { z } from 'zod';
import type { Pod, Service } from '../types.js';
import { LabelMap, Metadata, PortNumber } from './common.js';
import type { KindBody } from './kind.js';

/*
 * core/v1 Pod and Service, as `kubectl get -o yaml` prints them. Only the fields endpoint
 * discovery reads are checked; everything else is accepted and ignored, so real exports load.
 */

const ContainerPortSchema = z.looseObject({ name: z.string().min(1).max(15).optional(), containerPort: PortNumber });

export const PodSchema = z
  .looseObject({
    metadata: Metadata,
    spec: z.looseObject({ containers: z.array(z.looseObject({ ports: z.array(ContainerPortSchema).default([]) })).default([]) }).optional(),
    status: z
      .looseObject({
        podIP: z.string().optional(),
        phase: z.string().optional(),
        conditions: z.array(z.looseObject({ type: z.string(), status: z.string() })).default([]),
      })
      .optional(),
  })
  .transform((r): KindBody<Pod> => {
    const ready = r.status?.conditions.find((c) => c.type === 'Ready');
    return {
      metadata: r.metadata,
      spec: {
        containerPorts: (r.spec?.containers ?? []).flatMap((c) => c.ports.map((p) => (p.name === undefined ? { containerPort: p.containerPort } : { name: p.name, containerPort: p.containerPort }))),
      },
      status: {
        ...(r.status?.podIP === undefined || r.status.podIP === '' ? {} : { podIP: r.status.podIP }),
        ...(r.status?.phase === undefined ? {} : { phase: r.status.phase }),
        ...(ready === undefined ? {} : { ready: ready.status === 'True' }),
      },
    };
  });

export const ServiceSchema = z
  .looseObject({
    metadata: Metadata,
    spec: z.looseObject({
      selector: LabelMap.default({}),
      ports: z
        .array(z.looseObject({ name: z.string().optional(), port: PortNumber, targetPort: z.union([PortNumber, z.string().min(1)]).optional() }))
        .default([]),
    }),
  })
  .transform(
    (r): KindBody<Service> => ({
      metadata: r.metadata,
      spec: {
        selector: r.spec.selector,
        ports: r.spec.ports.map((p) => ({ port: p.port, targetPort: p.targetPort ?? p.port, ...(p.name === undefined ? {} : { name: p.name }) })),
      },
    }),
  );
