import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { Filter, SchedulingRequest, TypedName } from '../types.js';

export const ROLE_FILTER = 'role-filter';

const Parameters = z.object({ role: z.enum(['prefill', 'decode']) }).strict();

/**
 * Keeps the endpoints that can play a role in a prefill/decode pool: the role itself, or `both`
 * (a pod that can do either). The prefill and decode profiles of a PD pool each start with one.
 */
export class RoleFilter implements Filter {
  readonly typedName: TypedName;
  readonly role: 'prefill' | 'decode';

  constructor(name: string, role: 'prefill' | 'decode') {
    this.typedName = { type: ROLE_FILTER, name };
    this.role = role;
  }

  filter(_request: SchedulingRequest, endpoints: readonly Endpoint[]): readonly Endpoint[] {
    return endpoints.filter((e) => e.role === this.role || e.role === 'both');
  }
}

export function createRoleFilter(name: string, parameters: Readonly<Record<string, unknown>>): RoleFilter {
  return new RoleFilter(name, Parameters.parse(parameters).role);
}
