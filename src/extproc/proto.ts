import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadSync, type MethodDefinition, type Options } from '@grpc/proto-loader';
import type { ProcessingRequest, ProcessingResponse } from './messages.js';

/**
 * The project's own subset of Envoy's ext_proc protos, shipped as source: package.json "files"
 * lists src/extproc/proto, and from dist/src/extproc/proto.js (or src/ under a TypeScript runner)
 * it sits three levels up at src/extproc/proto.
 */
export const PROTO_DIR = fileURLToPath(new URL('../../../src/extproc/proto/', import.meta.url));

/** The file that declares the service (relative to PROTO_DIR). */
export const EXT_PROC_PROTO = 'envoy/service/ext_proc/v3/external_processor.proto';

/** gRPC method path Envoy calls. */
export const PROCESS_METHOD_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';

/** The fully qualified service name (also a gRPC health service name Envoy's health check asks for). */
export const EXT_PROC_SERVICE = 'envoy.service.ext_proc.v3.ExternalProcessor';

/**
 * Decoder options: field names as in the .proto (snake_case), bytes as Buffer, enums by name,
 * no defaults filled in (an absent field stays absent, so "not sent" is visible), and the name of
 * a oneof's set member in the oneof's own property (`request`, `response`).
 */
const LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: false, oneofs: true, includeDirs: [PROTO_DIR] };

let cached: { service: ServiceDefinition; method: MethodDefinition<ProcessingRequest, ProcessingResponse>; grpc: GrpcObject } | undefined;

function load(): NonNullable<typeof cached> {
  if (cached !== undefined) return cached;
  const pkg = loadSync(EXT_PROC_PROTO, LOADER_OPTIONS);
  const service = pkg[EXT_PROC_SERVICE] as ServiceDefinition;
  const method = service['Process'] as unknown as MethodDefinition<ProcessingRequest, ProcessingResponse>;
  cached = { service, method, grpc: loadPackageDefinition(pkg) };
  return cached;
}

/** The ExternalProcessor service definition for `Server.addService`. */
export function extProcService(): ServiceDefinition<UntypedServiceImplementation> {
  return load().service as ServiceDefinition<UntypedServiceImplementation>;
}

/** A client constructor for the service (tests and the Envoy stand-in play Envoy with it). */
export function extProcClient(): ServiceClientConstructor {
  const ns = load().grpc as unknown as { envoy: { service: { ext_proc: { v3: { ExternalProcessor: ServiceClientConstructor } } } } };
  return ns.envoy.service.ext_proc.v3.ExternalProcessor;
}

/** Protobuf bytes of a ProcessingRequest, as gRPC frames them. */
export function encodeProcessingRequest(msg: ProcessingRequest): Buffer {
  return load().method.requestSerialize(msg);
}

export function decodeProcessingRequest(bytes: Buffer): ProcessingRequest {
  return load().method.requestDeserialize(bytes);
}

/** Protobuf bytes of a ProcessingResponse. */
export function encodeProcessingResponse(msg: ProcessingResponse): Buffer {
  return load().method.responseSerialize(msg);
}

export function decodeProcessingResponse(bytes: Buffer): ProcessingResponse {
  return load().method.responseDeserialize(bytes);
}
