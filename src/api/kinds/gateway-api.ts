import { z } from 'zod';
import type { BackendRef, GatewayClass, Gateway, HeaderModifier, HTTPRoute, HTTPRouteFilter, HTTPRouteMatch, HTTPRouteRule } from '../types.js';
import { DnsLabel, DurationMs, Group, Kind, Metadata, ObjectName, PortNumber } from './common.js';
import type { KindBody } from './kind.js';

/*
 * gateway.networking.k8s.io/v1: GatewayClass, Gateway, HTTPRoute, with the limits and defaults of
 * the Gateway API CRDs (standard channel). Only the fields the gateway acts on are modelled; the
 * rest of a spec is reported as unknown (a warning), never as an error.
 */

export const GatewayClassSchema = z
  .object({
    metadata: Metadata,
    spec: z.object({ controllerName: z.string().min(1).max(253), description: z.string().optional(), parametersRef: z.unknown().optional() }),
  })
  .transform((r): KindBody<GatewayClass> => ({ metadata: r.metadata, spec: { controllerName: r.spec.controllerName } }));

const ListenerSchema = z.object({
  name: ObjectName,
  port: PortNumber,
  protocol: z.string().min(1),
  hostname: z.string().min(1).max(253).optional(),
  allowedRoutes: z.unknown().optional(),
  tls: z.unknown().optional(),
});

export const GatewaySchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      gatewayClassName: ObjectName,
      listeners: z
        .array(ListenerSchema)
        .min(1)
        .max(64)
        .superRefine((listeners, ctx) => {
          const seen = new Set<string>();
          listeners.forEach((l, i) => {
            if (seen.has(l.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `listener name "${l.name}" must be unique within the Gateway` });
            seen.add(l.name);
          });
        }),
      addresses: z.unknown().optional(),
      infrastructure: z.unknown().optional(),
    }),
  })
  .transform(
    (r): KindBody<Gateway> => ({
      metadata: r.metadata,
      spec: {
        gatewayClassName: r.spec.gatewayClassName,
        listeners: r.spec.listeners.map((l) => ({ name: l.name, port: l.port, protocol: l.protocol, ...(l.hostname === undefined ? {} : { hostname: l.hostname.toLowerCase() }) })),
      },
    }),
  );

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

const StringMatchSchema = z.object({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: z.string().min(1).max(256),
  value: z.string().max(4096),
});

function validRegex(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

const PathMatchSchema = z
  .object({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
    value: z.string().max(1024).default('/'),
  })
  .superRefine((p, ctx) => {
    if (p.type !== 'RegularExpression' && !p.value.startsWith('/')) ctx.addIssue({ code: 'custom', path: ['value'], message: `must start with "/" (got "${p.value}")` });
    if (p.type === 'RegularExpression' && !validRegex(p.value)) ctx.addIssue({ code: 'custom', path: ['value'], message: `is not a valid regular expression: ${p.value}` });
  });

const MatchSchema = z.object({
  path: PathMatchSchema.default({ type: 'PathPrefix', value: '/' }),
  headers: z.array(StringMatchSchema).max(16).default([]),
  queryParams: z.array(StringMatchSchema).max(16).default([]),
  method: z.enum(HTTP_METHODS).optional(),
});

const HeaderValueSchema = z.object({ name: z.string().min(1).max(256), value: z.string().max(4096) });
const HeaderModifierSchema = z
  .object({
    set: z.array(HeaderValueSchema).max(16).default([]),
    add: z.array(HeaderValueSchema).max(16).default([]),
    remove: z.array(z.string().min(1)).max(16).default([]),
  })
  .transform((m): HeaderModifier => m);

/** Filter bodies other than the two header modifiers are open: they are reported, not parsed. */
const FilterSchema = z
  .looseObject({
    type: z.string().min(1),
    requestHeaderModifier: HeaderModifierSchema.optional(),
    responseHeaderModifier: HeaderModifierSchema.optional(),
  })
  .transform(
    (f): HTTPRouteFilter => ({
      type: f.type,
      ...(f.requestHeaderModifier === undefined ? {} : { requestHeaderModifier: f.requestHeaderModifier }),
      ...(f.responseHeaderModifier === undefined ? {} : { responseHeaderModifier: f.responseHeaderModifier }),
    }),
  );

const BackendRefSchema = z
  .object({
    group: Group.default(''),
    kind: Kind.default('Service'),
    name: ObjectName,
    namespace: DnsLabel.optional(),
    port: PortNumber.optional(),
    weight: z.number().int().min(0).max(1_000_000).default(1),
    filters: z.array(FilterSchema).max(16).default([]),
  })
  .transform(
    (b): BackendRef => ({
      group: b.group,
      kind: b.kind,
      name: b.name,
      weight: b.weight,
      filters: b.filters,
      ...(b.namespace === undefined ? {} : { namespace: b.namespace }),
      ...(b.port === undefined ? {} : { port: b.port }),
    }),
  );

const RuleSchema = z
  .object({
    name: z.string().min(1).max(253).optional(),
    matches: z.array(MatchSchema).max(64).default([{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]),
    filters: z.array(FilterSchema).max(16).default([]),
    backendRefs: z.array(BackendRefSchema).max(16).default([]),
    timeouts: z.object({ request: DurationMs.optional(), backendRequest: DurationMs.optional() }).optional(),
    retry: z.unknown().optional(),
    sessionPersistence: z.unknown().optional(),
  })
  .transform(
    (r): HTTPRouteRule => ({
      matches: r.matches.length === 0 ? [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }] : r.matches.map((m): HTTPRouteMatch => ({ ...m, ...(m.method === undefined ? {} : { method: m.method }) })),
      filters: r.filters,
      backendRefs: r.backendRefs,
      ...(r.name === undefined ? {} : { name: r.name }),
      ...(r.timeouts?.request === undefined ? {} : { requestTimeoutMs: r.timeouts.request }),
    }),
  );

const ParentRefSchema = z.object({
  group: Group.default('gateway.networking.k8s.io'),
  kind: Kind.default('Gateway'),
  name: ObjectName,
  namespace: DnsLabel.optional(),
  sectionName: ObjectName.optional(),
  port: PortNumber.optional(),
});

export const HTTPRouteSchema = z
  .object({
    metadata: Metadata,
    spec: z.object({
      parentRefs: z.array(ParentRefSchema).min(1).max(32),
      hostnames: z.array(z.string().min(1).max(253)).max(16).default([]),
      rules: z.array(RuleSchema).max(16).prefault([{}]),
    }),
  })
  .transform(
    (r): KindBody<HTTPRoute> => ({
      metadata: r.metadata,
      spec: {
        parentRefs: r.spec.parentRefs.map((p) => ({
          group: p.group,
          kind: p.kind,
          name: p.name,
          ...(p.namespace === undefined ? {} : { namespace: p.namespace }),
          ...(p.sectionName === undefined ? {} : { sectionName: p.sectionName }),
          ...(p.port === undefined ? {} : { port: p.port }),
        })),
        hostnames: r.spec.hostnames.map((h) => h.toLowerCase()),
        rules: r.spec.rules,
      },
    }),
  );
