import { editTopLevel, scanJsonObject } from './json-scan.js';

/**
 * Replaces the value of the top-level `model` in a JSON body without re-encoding the rest of it:
 * large prompts pass through byte for byte. The key is found by its decoded name (`"mod\u0065l"`
 * counts), and a body naming it twice is refused (json-scan.ts), so the value replaced is the
 * one the gateway read. The input must already be known-valid JSON (the caller parsed it);
 * returns `undefined` if there is no top-level string `model`. Throws `invalid_body` as
 * scanJsonObject does.
 */
export function spliceModel(body: Buffer, newModel: string): Buffer | undefined {
  const scanned = scanJsonObject(body);
  const member = scanned.members.find((m) => m.name === 'model');
  if (member === undefined || body[member.valueStart] !== 0x22 /* " */) return undefined;
  return editTopLevel(body, scanned, new Map([['model', JSON.stringify(newModel)]]));
}
