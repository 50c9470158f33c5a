/**
 * A value built on first use, then kept: a zod schema of a kind a file may
 * not hold costs its building only when a file does.
 */
export function lazy<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => (made ??= { value: make() }).value;
}
