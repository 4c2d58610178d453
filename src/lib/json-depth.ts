/**
 * How deep a JSON text nests its arrays and objects, counted without parsing it.
 *
 * JSON.parse takes any depth, but every recursive walk after it (schema validation, the
 * prototype-pollution scan, logging) can overflow the stack on a body that nests a few thousand
 * levels. Counting brackets outside strings is one linear pass, so the parser refuses such a body
 * before anything recurses on it.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c /* \ */) i++;
      else if (c === 0x22 /* " */) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b /* [ */ || c === 0x7b /* { */) {
      if (++depth > max) return true;
    } else if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      depth--;
    }
  }
  return false;
}
