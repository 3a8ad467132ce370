// Shared by the executor tests: polling for a condition with a deadline.
export { eventually, freePorts, sleep } from '../../agent/test/harness.js';
