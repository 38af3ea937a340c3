/* Bounded concurrency for harness work (attaching a thousand namespaces, a client per network). */

/** Run `fn` over `items`, at most `n` at a time; the results in the items' order. The first failure rejects. */
export async function inParallel<T, R>(
  items: readonly T[],
  n: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(Math.max(1, n), items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}
