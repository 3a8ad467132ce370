// The executor's pure logic: the reconcile diff, the restart policy with its
// backoff, and the health state machine. No timers, no processes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initialHealth, probeDue, probeKind, recordProbe } from '../health-state.js';
import { nextFailure, nextHoldEndMs, OPERATION_RETRY_MS_MAX, reconcile, type ActualWorkload, type Hold } from '../reconcile.js';
import { RESTART_DELAY_MS_MAX, decideRestart, emptyHistory, restartDelayMs } from '../restart.js';
import type { HealthcheckSpec, RestartSpec } from '../../state/types.js';

const running = (id: string, version = 1): ActualWorkload => ({ id, version, state: 'running', busy: false });
const exited = (id: string, version = 1): ActualWorkload => ({ id, version, state: 'exited', busy: false });

test('reconcile starts what is wanted and missing, and leaves what runs', () => {
  const actions = reconcile({ wanted: [{ id: 'd.web.0', version: 1 }, { id: 'd.web.1', version: 1 }], actual: [running('d.web.0')], holds: new Map(), nowMs: 0 });
  assert.equal(actions, [{ type: 'start', id: 'd.web.1', version: 1 }]);
});

test('reconcile stops what is not wanted and removes what exited and is not wanted', () => {
  const actions = reconcile({ wanted: [], actual: [running('d.web.0'), exited('d.web.1')], holds: new Map(), nowMs: 0 });
  assert.equal(actions, [
    { type: 'stop', id: 'd.web.0', reason: 'not-wanted' },
    { type: 'remove', id: 'd.web.1', reason: 'not-wanted' },
  ]);
});

test('reconcile replaces a workload at another version: stop, then remove, then start', () => {
  const wanted = [{ id: 'd.web.0', version: 2 }];
  assert.equal(reconcile({ wanted, actual: [running('d.web.0', 1)], holds: new Map(), nowMs: 0 }), [{ type: 'stop', id: 'd.web.0', reason: 'replaced' }]);
  assert.equal(reconcile({ wanted, actual: [exited('d.web.0', 1)], holds: new Map(), nowMs: 0 }), [{ type: 'remove', id: 'd.web.0', reason: 'replaced' }]);
  assert.equal(reconcile({ wanted, actual: [], holds: new Map(), nowMs: 0 }), [{ type: 'start', id: 'd.web.0', version: 2 }]);
});

test('reconcile leaves busy workloads alone', () => {
  const actions = reconcile({ wanted: [], actual: [{ ...running('d.web.0'), busy: true }], holds: new Map(), nowMs: 0 });
  assert.equal(actions, []);
});

test('reconcile honours holds: restart when due, stay exited without a time, ignore holds of other versions', () => {
  const wanted = [{ id: 'd.web.0', version: 1 }];
  const later = new Map<string, Hold>([['d.web.0', { version: 1, untilMs: 5000 }]]);
  assert.equal(reconcile({ wanted, actual: [exited('d.web.0')], holds: later, nowMs: 4999 }), []);
  assert.equal(reconcile({ wanted, actual: [exited('d.web.0')], holds: later, nowMs: 5000 }), [{ type: 'remove', id: 'd.web.0', reason: 'restart' }]);
  assert.equal(reconcile({ wanted, actual: [], holds: later, nowMs: 5000 }), [{ type: 'start', id: 'd.web.0', version: 1 }]);
  const forever = new Map<string, Hold>([['d.web.0', { version: 1 }]]);
  assert.equal(reconcile({ wanted, actual: [exited('d.web.0')], holds: forever, nowMs: 10 ** 12 }), []);
  assert.equal(reconcile({ wanted, actual: [], holds: forever, nowMs: 10 ** 12 }), []);
  const stale = new Map<string, Hold>([['d.web.0', { version: 0 }]]);
  assert.equal(reconcile({ wanted, actual: [], holds: stale, nowMs: 0 }), [{ type: 'start', id: 'd.web.0', version: 1 }]);
  assert.is(nextHoldEndMs(later, 1000), 5000);
  assert.is(nextHoldEndMs(later, 6000), undefined);
});

const policy = (overrides: Partial<RestartSpec> = {}): RestartSpec => ({ condition: 'any', delayMs: 1000, windowMs: 0, ...overrides });

test('a failed stop or removal waits for its retry time; the wait doubles up to its maximum; a repeated message is logged once a minute', () => {
  const retryAt = new Map([['d.web.0', 1500]]);
  assert.equal(reconcile({ wanted: [], actual: [running('d.web.0')], holds: new Map(), retryAt, nowMs: 1499 }), []);
  assert.equal(reconcile({ wanted: [], actual: [running('d.web.0')], holds: new Map(), retryAt, nowMs: 1500 }), [{ type: 'stop', id: 'd.web.0', reason: 'not-wanted' }]);
  assert.is(nextHoldEndMs(new Map(), 1000, retryAt), 1500);
  let step = nextFailure(undefined, 'not stopped', 1000);
  assert.equal([step.failure.count, step.failure.retryAtMs, step.log], [1, 1500, true]);
  const delays: number[] = [];
  let nowMs = 1000;
  const logged: boolean[] = [];
  for (let attempt = 0; attempt < 10; attempt += 1) {
    nowMs = step.failure.retryAtMs;
    step = nextFailure(step.failure, 'not stopped', nowMs);
    delays.push(step.failure.retryAtMs - nowMs);
    logged.push(step.log);
  }
  assert.equal(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000, 30000]);
  assert.is(delays.every((delay) => delay <= OPERATION_RETRY_MS_MAX), true);
  // Logged: the first (above, at 1 s), then a repeat only once 60 s passed since the last line: the try at 62.5 s, then at 122.5 s.
  assert.equal(logged, [false, false, false, false, false, false, true, false, true, false]);
  assert.is(nextFailure(step.failure, 'another reason', nowMs + 1).log, true, 'a new message is logged at once');
});

test('restart conditions: none never, on-failure only on a failure, any always', () => {
  const clean = { exitCode: 0, oomKilled: false, ranMs: 50 };
  const crash = { exitCode: 1, oomKilled: false, ranMs: 50 };
  assert.is(decideRestart(policy({ condition: 'none' }), crash, emptyHistory(), 0).type, 'stay-exited');
  assert.is(decideRestart(policy({ condition: 'on-failure' }), clean, emptyHistory(), 0).type, 'stay-exited');
  assert.is(decideRestart(policy({ condition: 'on-failure' }), crash, emptyHistory(), 0).type, 'restart');
  assert.is(decideRestart(policy({ condition: 'on-failure' }), { exitCode: 0, oomKilled: true, ranMs: 5 }, emptyHistory(), 0).type, 'restart');
  assert.is(decideRestart(policy({ condition: 'any' }), clean, emptyHistory(), 0).type, 'restart');
});

test('quick failures double the delay up to the cap; a long run resets it', () => {
  let history = emptyHistory();
  const delays: number[] = [];
  let now = 0;
  for (let attempt = 0; attempt < 10; attempt++) {
    const decision = decideRestart(policy(), { exitCode: 1, oomKilled: false, ranMs: 100 }, history, now);
    assert.is(decision.type, 'restart');
    if (decision.type !== 'restart') return;
    delays.push(decision.delayMs);
    assert.is(decision.atMs, now + decision.delayMs);
    history = decision.history;
    now = decision.atMs + 100;
  }
  assert.equal(delays, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000]);
  const after = decideRestart(policy(), { exitCode: 1, oomKilled: false, ranMs: 60_000 }, history, now);
  assert.is(after.type === 'restart' && after.delayMs, 1000);
  assert.is(restartDelayMs(0, 1), 100);
  assert.is(restartDelayMs(10 ** 9, 1), RESTART_DELAY_MS_MAX);
});

test('max attempts within the window: give up with a message, and count only restarts inside the window', () => {
  const limited = policy({ maxAttempts: 2, windowMs: 10_000 });
  const crash = { exitCode: 3, oomKilled: false, ranMs: 10 };
  let history = emptyHistory();
  for (const now of [0, 1000]) {
    const decision = decideRestart(limited, crash, history, now);
    assert.is(decision.type, 'restart');
    if (decision.type === 'restart') history = decision.history;
  }
  const third = decideRestart(limited, crash, history, 2000);
  assert.equal(third, { type: 'give-up', message: 'gave up after 2 restarts within 10s (restart_policy.max_attempts 2); last exit code 3' });
  // Once the first restart leaves the window, one more is allowed.
  assert.is(decideRestart(limited, crash, history, 10_500).type, 'restart');
  // Without a window every restart counts.
  const forever = policy({ maxAttempts: 1 });
  const first = decideRestart(forever, crash, emptyHistory(), 0);
  assert.is(first.type, 'restart');
  if (first.type === 'restart') assert.is(decideRestart(forever, crash, first.history, 10 ** 9).type, 'give-up');
});

const check = (overrides: Partial<HealthcheckSpec> = {}): HealthcheckSpec => ({ test: ['CMD', 'true'], intervalMs: 5000, timeoutMs: 1000, retries: 3, startPeriodMs: 0, ...overrides });

test('health: starting, then healthy on a pass, unhealthy after retries failures in a row', () => {
  const spec = check();
  let health = initialHealth(spec, 0);
  assert.is(health.state, 'starting');
  assert.is(health.nextProbeAtMs, 1000);
  assert.is(probeDue(health, 999), false);
  assert.is(probeDue(health, 1000), true);
  health = recordProbe(spec, health, 1000, undefined);
  assert.is(health.state, 'healthy');
  assert.is(health.nextProbeAtMs, 6000);
  health = recordProbe(spec, health, 6000, 'exit code 1');
  health = recordProbe(spec, health, 11_000, 'exit code 1');
  assert.is(health.state, 'healthy');
  assert.is(health.failingStreak, 2);
  health = recordProbe(spec, health, 16_000, 'exit code 1');
  assert.is(health.state, 'unhealthy');
  assert.is(health.lastFailure, 'exit code 1');
  health = recordProbe(spec, health, 21_000, undefined);
  assert.is(health.state, 'healthy');
  assert.is(health.failingStreak, 0);
});

test('health: failures in the start period do not count until the first pass', () => {
  const spec = check({ retries: 1, startPeriodMs: 10_000, intervalMs: 500 });
  let health = initialHealth(spec, 0);
  health = recordProbe(spec, health, 500, 'refused');
  health = recordProbe(spec, health, 9000, 'refused');
  assert.is(health.state, 'starting');
  assert.is(health.failingStreak, 0);
  health = recordProbe(spec, health, 10_000, 'refused');
  assert.is(health.state, 'unhealthy');
  // Once healthy, the start period no longer shields failures.
  let other = recordProbe(spec, initialHealth(spec, 0), 500, undefined);
  other = recordProbe(spec, other, 1000, 'refused');
  assert.is(other.state, 'unhealthy');
});

test('probe kinds from the test forms', () => {
  assert.equal(probeKind(['CMD', 'curl', '-f', 'http://x/']), { type: 'exec', argv: ['curl', '-f', 'http://x/'] });
  assert.equal(probeKind(['CMD-SHELL', 'test -f /tmp/ok']), { type: 'exec', argv: ['/bin/sh', '-c', 'test -f /tmp/ok'] });
  assert.equal(probeKind(['HTTP', 'http://127.0.0.1:8080/healthz']), { type: 'http', url: 'http://127.0.0.1:8080/healthz' });
  assert.equal(probeKind(['TCP', '127.0.0.1:5432']), { type: 'tcp', host: '127.0.0.1', port: 5432 });
  assert.equal(probeKind(['TCP', '[::1]:5432']), { type: 'tcp', host: '::1', port: 5432 });
  assert.equal(probeKind(['NONE']), { type: 'none' });
});

test.run();
