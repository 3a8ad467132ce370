/**
 * A priority queue of timed events for the simulator. Events at the same time
 * run in the order they were scheduled, so a run depends only on its seed.
 */
export class EventQueue<T> {
  private readonly heap: { time: number; sequence: number; value: T }[] = [];
  private sequence = 0;

  get size(): number {
    return this.heap.length;
  }

  push(time: number, value: T): void {
    this.heap.push({ time, sequence: this.sequence++, value });
    this.siftUp(this.heap.length - 1);
  }

  /** The earliest event, removed; undefined when empty. */
  pop(): { time: number; value: T } | undefined {
    const top = this.heap[0];
    if (top === undefined) return undefined;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  peekTime(): number | undefined {
    return this.heap[0]?.time;
  }

  private before(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.time < y.time || (x.time === y.time && x.sequence < y.sequence);
  }

  private swap(a: number, b: number): void {
    const tmp = this.heap[a]!;
    this.heap[a] = this.heap[b]!;
    this.heap[b] = tmp;
  }

  private siftUp(position: number): void {
    while (position > 0) {
      const parent = (position - 1) >> 1;
      if (!this.before(position, parent)) return;
      this.swap(position, parent);
      position = parent;
    }
  }

  private siftDown(position: number): void {
    for (;;) {
      const left = position * 2 + 1;
      const right = left + 1;
      let smallest = position;
      if (left < this.heap.length && this.before(left, smallest)) smallest = left;
      if (right < this.heap.length && this.before(right, smallest)) smallest = right;
      if (smallest === position) return;
      this.swap(position, smallest);
      position = smallest;
    }
  }
}
