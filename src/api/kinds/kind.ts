import type { z } from 'zod';
import type { Resource, ResourceKind } from '../types.js';

/** What a kind's schema produces: the resource without the fields the loader fills in. */
export type KindBody<R extends Resource> = Omit<R, 'apiVersion' | 'kind' | 'source'>;

/**
 * One served kind: the apiVersions it is accepted in, the schema for each, and whether unknown
 * fields are refused (kinds we model in full, as `kubectl apply` refuses them) or expected (Pods
 * and Services carry far more than we read). Each schema's transform is typed `KindBody<TheKind>`, which is where the
 * output shape is checked; here the schemas are held as one type.
 */
export interface KindSpec {
  readonly kind: ResourceKind;
  readonly versions: Readonly<Record<string, z.ZodType>>;
  readonly strictFields: boolean;
}
