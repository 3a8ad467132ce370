/**
 * Seeds that once failed, kept so the bug they found stays fixed. Each line
 * says what it caught. The first five failed under the simulator's own copy
 * of the driver; since the world runs real RaftNodes a seed draws the same
 * settings but a different run, so they are kept as further seeds.
 */
export const REGRESSION_SEEDS: readonly { seed: number; caught: string }[] = [
  { seed: 2210, caught: 'a Snapshot message to a down node was never reported, leaving the follower paused forever' },
  { seed: 3020, caught: 'same as 2210, with a removal in flight' },
  { seed: 539, caught: 'simulator: a crash-during-write scheduled before the heal struck after it, leaving a member down' },
  { seed: 619, caught: 'same as 539' },
  {
    seed: 242,
    caught:
      'checker: a vote granted in one term and superseded, before the write, by a vote in a later term was flagged as not durable; the later term on disk keeps the promise',
  },
  {
    seed: 327,
    caught:
      "a follower acknowledged an old leader's entries, then, in the same Ready, replaced them with a new leader's: the acknowledgement left after a write that no longer held them (once the driver started a write before applying)",
  },
];
