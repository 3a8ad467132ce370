// The tracing helpers while tracing is off (every process that has no
// --otlp-endpoint): bodies run as they are and nothing is carried; and the
// pure parts (the traces URL, the cluster id).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { activeTraceIds, clusterIdOf, contextOf, inSpan, linkTo, traceparentOf, tracesUrl, untraced, untracedTimers } from '../tracing.js';
import { systemTimers } from '../../../consensus/timers.js';

test('off: a span\'s body runs and its result or error comes back; no trace context anywhere', async () => {
  assert.is(inSpan('sync', {}, () => 7), 7);
  assert.is(await inSpan('async', {}, async () => 8), 8);
  await inSpan('failing', {}, async () => {
    throw new Error('boom');
  }).then(
    () => assert.unreachable('the error is thrown on'),
    (error: Error) => assert.is(error.message, 'boom'),
  );
  inSpan('inner', {}, (span) => {
    assert.is(span.isRecording(), false);
    assert.is(traceparentOf(), undefined);
    assert.is(activeTraceIds(), undefined);
  });
  assert.is(contextOf('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), undefined);
  assert.is(linkTo('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), undefined);
  assert.is(untraced(() => 'ran'), 'ran');
});

test('untraced timers keep the clock the Raft driver budgets its applies by, and leave it out when the timers have none', () => {
  const wrapped = untracedTimers(systemTimers);
  assert.type(wrapped.nowMs, 'function');
  const before = systemTimers.nowMs!();
  const read = wrapped.nowMs!();
  assert.ok(read >= before && read - before < 1000, `the wrapped clock reads the same clock: ${before} then ${read}`);
  const clockless = untracedTimers({ setTimeout: systemTimers.setTimeout, setInterval: systemTimers.setInterval, setImmediate: systemTimers.setImmediate });
  assert.is(clockless.nowMs, undefined);
});

test('the traces URL: /v1/traces appended to a base URL, kept when given', () => {
  assert.is(tracesUrl('http://127.0.0.1:4318'), 'http://127.0.0.1:4318/v1/traces');
  assert.is(tracesUrl('http://collector:4318/otlp/'), 'http://collector:4318/otlp/v1/traces');
  assert.is(tracesUrl('https://collector/v1/traces'), 'https://collector/v1/traces');
});

test('the cluster id: 16 hex digits, stable for a key, different for another', () => {
  const key = new Uint8Array(32).fill(1);
  assert.match(clusterIdOf(key), /^[0-9a-f]{16}$/);
  assert.is(clusterIdOf(key), clusterIdOf(new Uint8Array(32).fill(1)));
  assert.is.not(clusterIdOf(key), clusterIdOf(new Uint8Array(32).fill(2)));
});

test.run();
