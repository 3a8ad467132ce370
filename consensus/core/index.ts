export * from './types.js';
export { assert, AssertionError } from './assert.js';
export { SeededRandom } from './random.js';
export { RawNode, bootstrapState, type RestoredState } from './raw-node.js';
export { quorumSize, applyChange } from './config.js';
