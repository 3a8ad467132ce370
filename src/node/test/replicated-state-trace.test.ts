// The trace context in Raft entries (Envelope.traceparent, docs/internals/tracing.md):
// metadata the bridge takes off before apply, so it changes no state and no
// result; only entries of TRACE_CONTEXT_VERSION or later may carry it, and an
// older entry that does is refused as older code refuses it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EntryType } from '../../../consensus/core/types.js';
import { encodeValue, ReplicatedState, type StateEvent } from '../replicated-state.js';
import { TRACE_CONTEXT_VERSION } from '../../state/version.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function entry(index: number, envelope: Record<string, unknown>): { term: number; index: number; type: EntryType; data: Uint8Array } {
  return { term: 1, index, type: EntryType.Normal, data: encodeValue(envelope) };
}

function kvPut(key: string, extra: Record<string, unknown>): Record<string, unknown> {
  return { requestId: key, time: 1_700_000_000_000, actor: 'test', ...extra, command: { type: 'kv.put', key, value: 'v' } };
}

test('an entry of the trace context version applies the same with and without its traceparent', () => {
  const traced = new ReplicatedState();
  const plain = new ReplicatedState();
  const events: StateEvent[] = [];
  traced.listen((event) => events.push(event));
  const withTrace = traced.apply(entry(1, kvPut('a', { version: TRACE_CONTEXT_VERSION, traceparent: TRACEPARENT })));
  const without = plain.apply(entry(1, kvPut('a', { version: TRACE_CONTEXT_VERSION })));
  assert.equal(withTrace, without);
  assert.is(withTrace.ok, true);
  assert.equal(traced.snapshot(), plain.snapshot(), 'the same state, byte for byte');
  // Tracing is off in this process: there is no apply span to hand on.
  assert.equal(events, [{ type: 'applied', index: 1, commandType: 'kv.put', result: withTrace }]);
});

test('an older entry carrying a traceparent is refused as older code refuses it; a traceparent that is not text too', () => {
  const state = new ReplicatedState();
  const older = state.apply(entry(1, kvPut('b', { version: TRACE_CONTEXT_VERSION - 1, traceparent: TRACEPARENT })));
  assert.is(older.ok, false);
  assert.match(!older.ok ? older.error.message : '', 'traceparent');
  const notText = state.apply(entry(2, kvPut('c', { version: TRACE_CONTEXT_VERSION, traceparent: 7 })));
  assert.is(notText.ok, false);
  assert.is(state.machine.kvGet('b'), undefined);
  assert.is(state.machine.kvGet('c'), undefined);
  // A malformed trace context in text is only metadata: the command applies (no trace is joined).
  assert.is(state.apply(entry(3, kvPut('d', { version: TRACE_CONTEXT_VERSION, traceparent: 'not-a-traceparent' }))).ok, true);
});

test.run();
