/**
 * Freezes plain objects and arrays recursively and walks into Map/Set values. Maps and Sets
 * themselves stay technically mutable (JavaScript cannot freeze them), but nothing in a compiled
 * snapshot mutates them: the type system exposes them as Readonly*.
 */
export function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (value === null || typeof value !== 'object' || seen.has(value)) return value;
  seen.add(value);
  if (ArrayBuffer.isView(value)) return value;
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v, seen);
    return value;
  }
  if (value instanceof Set) {
    for (const v of value.values()) deepFreeze(v, seen);
    return value;
  }
  for (const v of Object.values(value)) deepFreeze(v, seen);
  return Object.freeze(value);
}
