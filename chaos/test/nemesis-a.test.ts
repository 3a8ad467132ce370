// Chaos runs of the partition, kill and pause nemeses (see nemesis-runs.ts).
import { test } from 'uvu';
import { defineNemesisRuns } from './nemesis-runs.js';

defineNemesisRuns(['partition', 'kill', 'pause']);
test.run();
