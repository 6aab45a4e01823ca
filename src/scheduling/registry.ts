import { ZodError } from 'zod';
import type { Plugin, PluginHandle } from './types.js';

/**
 * Builds a plugin instance from its name, its parameters and the shared services it may use.
 * The factory owns its parameter schema: it validates `parameters` (with zod, `.strict()`, so a
 * misspelt field is an error) and throws on anything invalid.
 */
export type PluginFactory = (name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle) => Plugin;

/** A plugin could not be built from its configuration; the message names the plugin and field. */
export class PluginConfigError extends Error {
  constructor(
    readonly plugin: string,
    readonly field: string,
    readonly reason: string,
  ) {
    super(`plugin ${plugin}: ${field}: ${reason}`);
    this.name = 'PluginConfigError';
  }
}

/**
 * Maps plugin types to factories. A value, not a global, so tests build isolated registries and a
 * policy is data that names plugin types.
 */
export interface PluginRegistry {
  register(type: string, factory: PluginFactory): void;
  /** Builds an instance; throws PluginConfigError for an unknown type or invalid parameters. */
  create(type: string, handle: PluginHandle, name?: string, parameters?: Readonly<Record<string, unknown>>): Plugin;
  types(): string[];
}

export function createRegistry(): PluginRegistry {
  const factories = new Map<string, PluginFactory>();
  return {
    register(type, factory) {
      if (factories.has(type)) throw new Error(`plugin type ${type} is already registered`);
      factories.set(type, factory);
    },
    create(type, handle, name = type, parameters = {}) {
      const factory = factories.get(type);
      if (factory === undefined) throw new PluginConfigError(`${name} (${type})`, 'type', `unknown plugin type (known: ${[...factories.keys()].join(', ')})`);
      try {
        return factory(name, parameters, handle);
      } catch (err) {
        if (err instanceof ZodError) {
          const issue = err.issues[0];
          const path = issue === undefined || issue.path.length === 0 ? 'parameters' : `parameters.${issue.path.join('.')}`;
          throw new PluginConfigError(`${name} (${type})`, path, issue?.message ?? err.message);
        }
        throw err;
      }
    },
    types() {
      return [...factories.keys()];
    },
  };
}
