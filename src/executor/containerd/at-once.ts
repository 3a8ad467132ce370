/**
 * Bounded concurrency for the containerd client's batch work (layers of an
 * image, warm network namespaces): never more than a few calls to
 * containerd or CNI under way, and no failure left unawaited.
 */

/** Waits for every promise, then rejects with the first failure, if any. */
export async function settleAll(work: Promise<void>[]): Promise<void> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
  if (failed !== undefined) throw failed.reason;
}

/**
 * Runs `task` on every item, at most `atOnce` under way; after a failure
 * starts no more, waits for those under way, and rejects with the first.
 */
export async function forEachAtOnce<T>(items: readonly T[], atOnce: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        await task(items[index]!, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await settleAll(Array.from({ length: Math.min(atOnce, items.length) }, worker));
}
