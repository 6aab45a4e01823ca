import type { Plugin } from './types.js';

/** Builds a plugin instance from its name and free-form parameters; validates its own parameters. */
export type PluginFactory = (name: string, parameters: Readonly<Record<string, unknown>>) => Plugin;

/**
 * Maps plugin types to factories. A value, not a global, so tests build isolated registries and a
 * policy is data that names plugin types.
 */
export interface PluginRegistry {
  register(type: string, factory: PluginFactory): void;
  create(type: string, name?: string, parameters?: Readonly<Record<string, unknown>>): Plugin;
  types(): string[];
}

export function createRegistry(): PluginRegistry {
  const factories = new Map<string, PluginFactory>();
  return {
    register(type, factory) {
      if (factories.has(type)) throw new Error(`plugin type ${type} is already registered`);
      factories.set(type, factory);
    },
    create(type, name = type, parameters = {}) {
      const factory = factories.get(type);
      if (factory === undefined) throw new Error(`unknown plugin type ${type} (known: ${[...factories.keys()].join(', ')})`);
      return factory(name, parameters);
    },
    types() {
      return [...factories.keys()];
    },
  };
}
