// A start-first update whose new instance does not fit beside the old one falls back to stop-first for that slot, saying so.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nextSpec, runningOf, worldWithWeb } from './world.js';

const startFirst = { parallelism: 1, delayMs: 0, failureAction: 'pause' as const, order: 'start-first' as const, monitorMs: 0 };

test('start-first with a published port on a one-node cluster: each slot falls back to stop-first, the rollout says so and succeeds', () => {
  const world = worldWithWeb({ nodes: 1, replicas: 1, spec: { ports: [{ target: 80, published: 8080, protocol: 'tcp' }], update: startFirst } });
  world.ok({ type: 'app.deploy', spec: nextSpec(world, { image: 'nginx:2' }) });
  const messages = new Set<string>();
  const finished = world.runUntil(() => {
    const rollout = world.machine.app('default', 'web')!.rollout!;
    messages.add(rollout.message);
    return rollout.state !== 'running';
  }, 60);
  assert.ok(finished, 'the rollout ends well before the progress deadline (20 s)');
  const rollout = world.machine.app('default', 'web')!.rollout!;
  assert.is(rollout.state, 'succeeded', rollout.message);
  assert.equal(runningOf(world), ['v2@n1']);
  const fallback = [...messages].find((message) => message.includes('falling back to stop-first'));
  assert.ok(fallback, `the rollout said it fell back: ${[...messages].join(' | ')}`);
  assert.match(fallback!, 'slot 0: version 2 does not fit beside the old instance (1 node: host port 8080/tcp already published)');
  const ordered = [...messages];
  const waiting = ordered.slice(ordered.indexOf(fallback!) + 1).filter((message) => message.startsWith('waiting for'));
  assert.ok(waiting.length > 0 && waiting.every((message) => message.endsWith('slot 0: version 2 does not fit beside the old instance, which stopped first (stop-first there)')), `until the batch is done, the rollout says the slot went stop-first: ${waiting.join(' | ')}`);
});

test('start-first without room for two on the only node falls back too; where the new instance fits elsewhere, nothing is retired early', () => {
  const GiB = 1024 ** 3;
  const full = worldWithWeb({ nodes: 1, replicas: 1, spec: { reservations: { memoryBytes: 5 * GiB }, update: startFirst } });
  full.ok({ type: 'app.deploy', spec: nextSpec(full, { image: 'nginx:2' }) });
  assert.ok(full.runUntil(() => full.machine.app('default', 'web')!.rollout!.state !== 'running', 60));
  assert.is(full.machine.app('default', 'web')!.rollout!.state, 'succeeded');

  const roomy = worldWithWeb({ nodes: 2, replicas: 1, spec: { ports: [{ target: 80, published: 8080, protocol: 'tcp' }], update: startFirst } });
  roomy.ok({ type: 'app.deploy', spec: nextSpec(roomy, { image: 'nginx:2' }) });
  const messages: string[] = [];
  assert.ok(roomy.runUntil(() => {
    messages.push(roomy.machine.app('default', 'web')!.rollout!.message);
    return roomy.machine.app('default', 'web')!.rollout!.state !== 'running';
  }, 60));
  assert.is(roomy.machine.app('default', 'web')!.rollout!.state, 'succeeded');
  assert.not.ok(messages.some((message) => message.includes('stop-first')), 'the other node takes the new instance beside the old');
});

test.run();
