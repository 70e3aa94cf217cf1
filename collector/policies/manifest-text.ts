/**
 * A policy manifest's JSON text, made once per manifest object: the `policies` frame, the
 * compiled set's reuse check, the plan's unchanged check and the store's rows all need it, for
 * every stored policy on every change. Manifests are plain data never changed once read (a
 * change brings a new object), so the text stays true.
 */
const texts = new WeakMap<object, string>();

/** `JSON.stringify(manifest)`, remembered for the manifest object. */
export function manifestText(manifest: Record<string, unknown>): string {
  let text = texts.get(manifest);
  if (text === undefined) texts.set(manifest, (text = JSON.stringify(manifest)));
  return text;
}

/** A manifest read back from its JSON text (`manifestText` of it is that text, without making it again). */
export function manifestFromText(text: string): Record<string, unknown> {
  const manifest = JSON.parse(text) as Record<string, unknown>;
  texts.set(manifest, text);
  return manifest;
}
