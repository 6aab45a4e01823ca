import { service as healthDefinition } from 'grpc-health-check';
import type { GrpcServerCall } from './call.js';
import type { MethodHandler } from './server.js';
import { GrpcCode } from './status.js';

/** A service's health as grpc.health.v1 names it. */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING';

/** Where the health service reads statuses and hears their changes. */
export interface HealthStatuses {
  /** The status of `service`, undefined when it is not known. */
  get(service: string): ServingStatus | undefined;
  /** Every known service's status. */
  entries(): Iterable<readonly [string, ServingStatus]>;
  /** Calls `listener` with each change of `service`'s status; returns the unsubscribe. */
  watch(service: string, listener: (status: ServingStatus) => void): () => void;
}

/** Services a List answer may hold before it fails RESOURCE_EXHAUSTED (grpc-health-check's bound). */
const LIST_LIMIT = 100;

interface Codec<T> {
  readonly path: string;
  requestDeserialize(b: Buffer): T;
  responseSerialize(v: unknown): Buffer;
}

/**
 * grpc.health.v1.Health (Check, Watch, List) on the picker's own gRPC server, with the messages
 * and answers of grpc-health-check (grpc-node's implementation, which served it before): Check on
 * an unknown service is NOT_FOUND, Watch on one reports SERVICE_UNKNOWN and stays open. Not on
 * the request path: the proto codecs are protobufjs's, from that package's definition.
 */
export function healthMethods(statuses: HealthStatuses): Map<string, MethodHandler> {
  const def = healthDefinition as unknown as Record<'Check' | 'Watch' | 'List', Codec<{ service?: string }>>;
  const methods = new Map<string, MethodHandler>();
  methods.set(def.Check.path, (call) =>
    unary(call, def.Check, (req) => {
      const service = req.service ?? '';
      const status = statuses.get(service);
      if (status === undefined) return { code: GrpcCode.NOT_FOUND, details: `Health status unknown for service ${service}` };
      call.write(def.Check.responseSerialize({ status }));
      return undefined;
    }),
  );
  methods.set(def.List.path, (call) =>
    unary(call, def.List, () => {
      const all: Record<string, { status: ServingStatus }> = {};
      let n = 0;
      for (const [name, status] of statuses.entries()) {
        if (++n > LIST_LIMIT) return { code: GrpcCode.RESOURCE_EXHAUSTED, details: 'Too many services to list.' };
        all[name] = { status };
      }
      call.write(def.List.responseSerialize({ statuses: all }));
      return undefined;
    }),
  );
  methods.set(def.Watch.path, (call) => {
    let unsubscribe: (() => void) | undefined;
    onRequest(call, def.Watch, (req) => {
      const service = req.service ?? '';
      const send = (status: ServingStatus | 'SERVICE_UNKNOWN'): void => {
        call.write(def.Watch.responseSerialize({ status }));
      };
      unsubscribe = statuses.watch(service, send);
      send(statuses.get(service) ?? 'SERVICE_UNKNOWN');
    }, () => unsubscribe?.());
  });
  return methods;
}

/** Reads the one request message of a unary or server-streaming call, then calls `handle` on the half-close. */
function onRequest<T>(call: GrpcServerCall, codec: Codec<T>, handle: (req: T) => void, onClose: () => void = () => undefined): void {
  let request: Buffer | undefined;
  let count = 0;
  call.start({
    onMessage: (m) => {
      // The message may be a view of a frame: keep a copy (health messages are a few bytes).
      if (count++ === 0) request = Buffer.from(m);
    },
    onHalfClose: () => {
      if (count !== 1 || request === undefined) {
        call.end({ code: GrpcCode.UNIMPLEMENTED, details: count === 0 ? 'No message received' : 'Received a second request message for server streaming method' });
        return;
      }
      let req: T;
      try {
        req = codec.requestDeserialize(request);
      } catch {
        call.end({ code: GrpcCode.INTERNAL, details: 'Error deserializing request' });
        return;
      }
      handle(req);
    },
    onClose,
  });
}

/** A unary call: the answer (or a failure status) once the request is read. */
function unary<T>(call: GrpcServerCall, codec: Codec<T>, answer: (req: T) => { code: number; details: string } | undefined): void {
  onRequest(call, codec, (req) => call.end(answer(req)));
}
