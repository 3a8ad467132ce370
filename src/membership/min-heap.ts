/**
 * A binary min-heap ordered by a caller-given `before(a, b)` (true when `a`
 * comes out first). Ties come out in no guaranteed order, so a caller that
 * needs a deterministic order breaks ties in `before`.
 */
import { assert } from '../../consensus/core/assert.js';

export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  /** The first item, left in place; undefined when empty. */
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const items = this.items;
    let position = items.length;
    items.push(item);
    while (position > 0) {
      const parent = (position - 1) >> 1;
      if (!this.before(item, items[parent]!)) break;
      items[position] = items[parent]!;
      position = parent;
    }
    items[position] = item;
  }

  /** Removes and returns the first item; asserts the heap is not empty. */
  pop(): T {
    const items = this.items;
    const top = items[0];
    assert(top !== undefined, 'min-heap: pop from an empty heap');
    const last = items.pop()!;
    if (items.length === 0) return top;
    let position = 0;
    for (;;) {
      const left = 2 * position + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && this.before(items[right]!, items[left]!) ? right : left;
      if (!this.before(items[child]!, last)) break;
      items[position] = items[child]!;
      position = child;
    }
    items[position] = last;
    return top;
  }
}
