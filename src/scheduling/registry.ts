import type { Plugin, PluginHandle } from './types.js';

/**
 * Builds a plugin instance from its name, free-form parameters (validated by the factory, which
 * names the bad field) and the shared services it may use.
 */
export type PluginFactory = (name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle) => Plugin;

/**
 * Maps plugin types to factories. A value, not a global, so tests build isolated registries and a
 * policy is data that names plugin types.
 */
export interface PluginRegistry {
  register(type: string, factory: PluginFactory): void;
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
      if (factory === undefined) throw new Error(`unknown plugin type ${type} (known: ${[...factories.keys()].join(', ')})`);
      return factory(name, parameters, handle);
    },
    types() {
      return [...factories.keys()];
    },
  };
}
