/**
 * Values built on first use. Building its zod schemas was a quarter of what
 * loading the program cost (~800 schema objects, ~20 ms of every one-shot
 * command), while a command reads a few of them: behind these, a schema is
 * built when it is first read, and once.
 */

/** `build()` on the first call, its result on every call. */
export function once<T>(build: () => T): () => T {
  let built = false;
  let value: T;
  return () => {
    if (!built) {
      value = build();
      built = true;
    }
    return value;
  };
}

/**
 * An object with one property per builder, each built on its first read and
 * a plain read-only property from then on. Its keys are all there from the
 * start (`Object.keys`, `in` and `Object.hasOwn` see them without building).
 */
export function lazyRecord<B extends Record<string, () => unknown>>(builders: B): { readonly [K in keyof B]: ReturnType<B[K]> } {
  const record: Record<string, unknown> = {};
  for (const [key, build] of Object.entries(builders)) {
    Object.defineProperty(record, key, {
      enumerable: true,
      configurable: true,
      get() {
        const value = build();
        Object.defineProperty(record, key, { value, enumerable: true, writable: false, configurable: false });
        return value;
      },
    });
  }
  return record as { readonly [K in keyof B]: ReturnType<B[K]> };
}
