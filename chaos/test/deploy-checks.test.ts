/** The deploy workload's checker on hand-made operations and cluster states: it passes a converged one and fails the broken ones. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkConvergence, expectApps, type ObservedCluster, type ObservedInstance, type ObservedProcess } from '../deploy-checks.js';
import type { AppOperationFunction, HistoryEvent } from '../recorder.js';

let clock = 0;
function operation(process: number, f: AppOperationFunction, key: string, value: number, type: 'ok' | 'fail' | 'info'): HistoryEvent[] {
  clock += 2;
  return [
    { process, type: 'invoke', f, key, value, time: clock - 2 },
    { process, type, f, key, value, time: clock - 1 },
  ];
}

function instance(app: string, slot: number, node: string, overrides: Partial<ObservedInstance> = {}): ObservedInstance {
  return { id: `default.${app}.${slot}.1`, app, slot, node, desired: 'running', state: 'running', ...overrides };
}

function processOf(item: ObservedInstance, pid: number, node = item.node!): ObservedProcess {
  return { pid, instanceId: item.id, node };
}

const up = new Map([
  ['n1', 'up'],
  ['n2', 'up'],
  ['n3', 'up'],
]);

/** web: 2 replicas; gone: deleted. Placed on n1 and n2, one process each. */
function converged(): ObservedCluster {
  const web0 = instance('web', 0, 'n1');
  const web1 = instance('web', 1, 'n2');
  return { instances: [web0, web1], nodeStatus: up, processes: [processOf(web0, 100), processOf(web1, 101)] };
}

const history = [...operation(1, 'deploy', 'web', 3, 'ok'), ...operation(1, 'scale', 'web', 2, 'ok'), ...operation(1, 'deploy', 'gone', 1, 'ok'), ...operation(1, 'delete', 'gone', 0, 'ok')];

test('expectations: the last ok operation decides; fails change nothing; an unknown outcome adds its effect', () => {
  const expected = expectApps([
    ...history,
    ...operation(1, 'scale', 'web', 1, 'fail'),
    ...operation(2, 'deploy', 'maybe', 2, 'info'),
    ...operation(2, 'deploy', 'never', 2, 'fail'),
    ...operation(3, 'deploy', 'flip', 1, 'ok'),
    ...operation(3, 'delete', 'flip', 0, 'info'),
    { process: 4, type: 'invoke', f: 'deploy', key: 'open', value: 3, time: 999 },
  ]);
  assert.equal(expected.get('web'), [{ exists: true, replicas: 2 }]);
  assert.equal(expected.get('gone'), [{ exists: false }]);
  assert.equal(expected.get('maybe'), [{ exists: false }, { exists: true, replicas: 2 }]);
  assert.equal(expected.get('never'), [{ exists: false }]);
  assert.equal(expected.get('flip'), [{ exists: true, replicas: 1 }, { exists: false }]);
  assert.equal(expected.get('open'), [{ exists: false }, { exists: true, replicas: 3 }]);
});

test('convergence: a state that matches passes', () => {
  assert.equal(checkConvergence(expectApps(history), converged()), []);
});

test('convergence: an instance on a down node fails', () => {
  const state = converged();
  const violations = checkConvergence(expectApps(history), { ...state, nodeStatus: new Map([...up, ['n2', 'down']]) });
  assert.is(violations.length, 1, violations.join('\n'));
  assert.match(violations[0]!, /app web: .*default\.web\.1\.1 is placed on n2, whose status is down/);
});

test('convergence: an instance running twice, or a slot held twice, fails', () => {
  const state = converged();
  const twice = checkConvergence(expectApps(history), { ...state, processes: [...state.processes, processOf(state.instances[0]!, 102, 'n3')] });
  assert.is(twice.length, 1, twice.join('\n'));
  assert.match(twice[0]!, /default\.web\.0\.1 also runs elsewhere: pid 102 on n3/);
  const duplicate = instance('web', 1, 'n3', { id: 'default.web.1.2' });
  const slot = checkConvergence(expectApps(history), { ...state, instances: [...state.instances, duplicate], processes: [...state.processes, processOf(duplicate, 103)] });
  assert.ok(slot.length === 1 && /3 instance\(s\) wanted running, not 2/.test(slot[0]!) && /slot 1 is held twice/.test(slot[0]!), slot.join('\n'));
});

test('convergence: a missing instance, a missing process, and leftovers of a deleted app fail', () => {
  const state = converged();
  const missing = checkConvergence(expectApps(history), { ...state, instances: [state.instances[0]!], processes: [state.processes[0]!] });
  assert.equal(missing, ['app web: expected 2 instance(s): 1 instance(s) wanted running, not 2']);
  const noProcess = checkConvergence(expectApps(history), { ...state, processes: [state.processes[0]!] });
  assert.equal(noProcess, ['app web: expected 2 instance(s): default.web.1.1 has 0 process(es) on n2, its node, not 1']);
  const gone = instance('gone', 0, 'n3');
  const leftovers = checkConvergence(expectApps(history), { ...state, instances: [...state.instances, gone], processes: [...state.processes, processOf(gone, 104)] });
  assert.is(leftovers.length, 1);
  assert.match(leftovers[0]!, /app gone: expected deleted: 1 instance record\(s\) left .*1 process\(es\) left \(pid 104 on n3\)/);
});

test('convergence: an app with an unknown last operation may be in either state, and in no third one', () => {
  const unsure = [...history, ...operation(2, 'deploy', 'maybe', 1, 'info')];
  assert.equal(checkConvergence(expectApps(unsure), converged()), []);
  const maybe = instance('maybe', 0, 'n3');
  const present = { ...converged(), instances: [...converged().instances, maybe], processes: [...converged().processes, processOf(maybe, 105)] };
  assert.equal(checkConvergence(expectApps(unsure), present), []);
  const third = instance('maybe', 1, 'n1');
  const wrong = checkConvergence(expectApps(unsure), { ...present, instances: [...present.instances, third], processes: [...present.processes, processOf(third, 106)] });
  assert.is(wrong.length, 1);
  assert.match(wrong[0]!, /app maybe: expected 1 instance\(s\) \(nearest of the allowed deleted or 1 instance\(s\)\)/);
});

test('convergence: an instance not running, and apps the workload never deployed, fail', () => {
  const state = converged();
  const exited = checkConvergence(expectApps(history), { ...state, instances: [state.instances[0]!, { ...state.instances[1]!, state: 'exited' }] });
  assert.match(exited.join('\n'), /default\.web\.1\.1 on n2 is exited, not running/);
  const stranger = instance('stranger', 0, 'n1');
  const strangers = checkConvergence(expectApps(history), { ...state, instances: [...state.instances, stranger] });
  assert.equal(strangers, ['app stranger: never deployed by the workload, yet it has instances or processes']);
});

test.run();
