// The scheduler simulation: a few seeds against 1,000 simulated nodes (more: npm run sim:scheduler -- --seeds N).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runSimulation, SimRandom } from '../sim.js';

const SEEDS = [1, 2, 3];

for (const seed of SEEDS) {
  test(`seed ${seed}: safety after every step, convergence after faults stop`, () => {
    const result = runSimulation({ seed, nodes: 1000, steps: 120, livenessSteps: 300 });
    assert.equal(result.violations, [], `seed ${seed} failed; replay: npm run sim:scheduler -- --seed ${seed} --nodes 1000 --steps 120`);
    assert.ok(result.stats.deploys > 0 && result.stats.downs > 0, 'the run exercised deploys and node failures');
  });
}

test('a seed replays exactly', () => {
  const first = runSimulation({ seed: 7, nodes: 200, steps: 60, livenessSteps: 100 });
  const second = runSimulation({ seed: 7, nodes: 200, steps: 60, livenessSteps: 100 });
  assert.equal(second, first);
  const random = new SimRandom(42);
  const again = new SimRandom(42);
  assert.equal([random.next(), random.next()], [again.next(), again.next()]);
});

test.run();
