import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassQueue } from '../pass-queue.js';

/** A pass the test finishes by hand. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

async function settle(): Promise<void> {
  for (let turn = 0; turn < 20; turn++) await Promise.resolve();
}

test('one pass at a time; passes asked for meanwhile run once each, highest priority first', async () => {
  const ran: string[] = [];
  const gates: (() => void)[] = [];
  const queue = new PassQueue<'state' | 'drift'>(['state', 'drift'], async (pass) => {
    ran.push(`start ${pass}`);
    const { promise, open } = gate();
    gates.push(open);
    await promise;
    ran.push(`end ${pass}`);
  }, () => undefined);
  queue.request('drift');
  queue.request('drift');
  await settle();
  assert.equal(ran, ['start drift'], 'asked twice before it started: one pass');
  queue.request('drift');
  queue.request('state');
  queue.request('state');
  assert.ok(queue.isDue('state') && queue.isDue('drift'));
  gates.shift()!();
  await settle();
  assert.equal(ran, ['start drift', 'end drift', 'start state'], 'the state pass jumps the drift pass asked for before it');
  gates.shift()!();
  await settle();
  gates.shift()!();
  await settle();
  assert.equal(ran.slice(3), ['end state', 'start drift', 'end drift']);
  assert.not.ok(queue.isDue('drift'));
});

test('a pass that rejects is reported and the queue goes on; after stop nothing runs', async () => {
  const ran: string[] = [];
  const errors: string[] = [];
  const queue = new PassQueue<'a' | 'b'>(['a', 'b'], async (pass) => {
    ran.push(pass);
    if (pass === 'a') throw new Error('broken');
  }, (pass, error) => errors.push(`${pass}: ${error.message}`));
  queue.request('a');
  queue.request('b');
  await settle();
  assert.equal(ran, ['a', 'b']);
  assert.equal(errors, ['a: broken']);
  await queue.stop();
  queue.request('a');
  await settle();
  assert.equal(ran, ['a', 'b'], 'stopped: no more passes');
});

test.run();
