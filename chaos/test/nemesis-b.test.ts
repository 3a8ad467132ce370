// Chaos runs of the loss, membership and trust nemeses (see nemesis-runs.ts).
import { test } from 'uvu';
import { defineNemesisRuns } from './nemesis-runs.js';

defineNemesisRuns(['loss', 'membership', 'trust']);
test.run();
