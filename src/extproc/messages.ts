/**
 * TypeScript shapes of the ext_proc messages as @grpc/proto-loader hands them over (options in
 * proto.ts: snake_case field names as in the .proto, bytes as Buffer, enums as their names, a
 * oneof's chosen member named in its own property). Only the fields of
 * proto/envoy/service/ext_proc/v3/external_processor.proto; every field is optional on the wire.
 */

/** google.protobuf.Value (the bundled well-known type uses camelCase names). */
export interface PbValue {
  nullValue?: 'NULL_VALUE' | 0;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: PbStruct;
  listValue?: { values?: PbValue[] };
  kind?: string;
}

/** google.protobuf.Struct. */
export interface PbStruct {
  fields?: Record<string, PbValue>;
}

/** envoy.config.core.v3.HeaderValue: Envoy fills `raw_value`; `value` is the older string form. */
export interface PbHeaderValue {
  key?: string;
  value?: string;
  raw_value?: Buffer | Uint8Array;
}

export interface PbHeaderMap {
  headers?: PbHeaderValue[];
}

export type PbHeaderAppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

export interface PbHeaderValueOption {
  header?: PbHeaderValue;
  /** google.protobuf.BoolValue (deprecated upstream in favour of append_action). */
  append?: { value?: boolean };
  append_action?: PbHeaderAppendAction;
  keep_empty_value?: boolean;
}

export interface PbMetadata {
  filter_metadata?: Record<string, PbStruct>;
}

/** envoy.extensions.filters.http.ext_proc.v3.ProcessingMode.BodySendMode. */
export type BodySendMode = 'NONE' | 'STREAMED' | 'BUFFERED' | 'BUFFERED_PARTIAL' | 'FULL_DUPLEX_STREAMED' | 'GRPC';
export type HeaderSendMode = 'DEFAULT' | 'SEND' | 'SKIP';

export interface PbProcessingMode {
  request_header_mode?: HeaderSendMode;
  response_header_mode?: HeaderSendMode;
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  request_trailer_mode?: HeaderSendMode;
  response_trailer_mode?: HeaderSendMode;
}

export interface PbProtocolConfiguration {
  request_body_mode?: BodySendMode;
  response_body_mode?: BodySendMode;
  send_body_without_waiting_for_header_response?: boolean;
}

export interface PbHttpHeaders {
  headers?: PbHeaderMap;
  end_of_stream?: boolean;
}

export interface PbHttpBody {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
  end_of_stream_without_message?: boolean;
  grpc_message_compressed?: boolean;
}

export interface PbHttpTrailers {
  trailers?: PbHeaderMap;
}

export type ProcessingRequestKind = 'request_headers' | 'response_headers' | 'request_body' | 'response_body' | 'request_trailers' | 'response_trailers';

/** What Envoy sends: one phase per message (the `request` oneof), plus metadata. */
export interface ProcessingRequest {
  request_headers?: PbHttpHeaders;
  response_headers?: PbHttpHeaders;
  request_body?: PbHttpBody;
  response_body?: PbHttpBody;
  request_trailers?: PbHttpTrailers;
  response_trailers?: PbHttpTrailers;
  /** Which member of the oneof is set (set by the decoder; unknown members leave it unset). */
  request?: ProcessingRequestKind;
  metadata_context?: PbMetadata;
  attributes?: Record<string, PbStruct>;
  observability_mode?: boolean;
  protocol_config?: PbProtocolConfiguration;
}

export interface PbHeaderMutation {
  set_headers?: PbHeaderValueOption[];
  remove_headers?: string[];
}

export interface PbStreamedBodyResponse {
  body?: Buffer | Uint8Array;
  end_of_stream?: boolean;
}

export interface PbBodyMutation {
  body?: Buffer | Uint8Array;
  clear_body?: boolean;
  streamed_response?: PbStreamedBodyResponse;
  /** Which member of the `mutation` oneof is set (decoder only). */
  mutation?: 'body' | 'clear_body' | 'streamed_response';
}

export interface PbCommonResponse {
  status?: 'CONTINUE' | 'CONTINUE_AND_REPLACE';
  header_mutation?: PbHeaderMutation;
  body_mutation?: PbBodyMutation;
  trailers?: PbHeaderMap;
  clear_route_cache?: boolean;
}

export interface PbHeadersResponse {
  response?: PbCommonResponse;
}

export interface PbBodyResponse {
  response?: PbCommonResponse;
}

export interface PbTrailersResponse {
  header_mutation?: PbHeaderMutation;
}

export interface PbImmediateResponse {
  /** envoy.type.v3.HttpStatus. */
  status?: { code?: number };
  headers?: PbHeaderMutation;
  body?: Buffer | Uint8Array;
  grpc_status?: { status?: number };
  details?: string;
}

/** What the picker answers; exactly one member of the `response` oneof per message. */
export interface ProcessingResponse {
  request_headers?: PbHeadersResponse;
  response_headers?: PbHeadersResponse;
  request_body?: PbBodyResponse;
  response_body?: PbBodyResponse;
  request_trailers?: PbTrailersResponse;
  response_trailers?: PbTrailersResponse;
  immediate_response?: PbImmediateResponse;
  response?: string;
  dynamic_metadata?: PbStruct;
  mode_override?: PbProcessingMode;
  request_drain?: boolean;
}
