import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { listedBeforeDevices } from '../listed-networks.js';

const front = { state: 'ready' as const, network: 'acme/front', bridge: 'hmt0123456789', subnet: '10.224.16.0/26', gateway: '10.224.16.1', block: '10.224.16.0/20' };
const back = { state: 'ready' as const, network: 'acme/back', bridge: 'hmtabcdefabcd', subnet: '10.224.32.0/26', gateway: '10.224.32.1', block: '10.224.32.0/20' };

test('nothing changed: no write', () => {
  assert.is(listedBeforeDevices({ 'acme/front': front }, { 'acme/front': front }), undefined);
  assert.is(listedBeforeDevices(undefined, undefined), undefined);
  assert.is(listedBeforeDevices({ 'acme/back': { state: 'pending', network: 'acme/back' } }, { 'acme/back': { state: 'pending', network: 'acme/back' } }), undefined);
});

test('a slice given back is listed pending before the pass deletes its bridge; one moved to another subnet too', () => {
  assert.equal(listedBeforeDevices({ 'acme/front': front, 'acme/back': back }, { 'acme/front': front, 'acme/back': { state: 'pending', network: 'acme/back' } }), {
    'acme/front': front,
    'acme/back': { state: 'pending', network: 'acme/back' },
  });
  assert.equal(listedBeforeDevices({ 'acme/front': front }, { 'acme/front': { ...front, subnet: '10.224.16.64/26', gateway: '10.224.16.65' } }), { 'acme/front': { state: 'pending', network: 'acme/front' } }, 'the old slice is not listed while the pass moves the bridge');
});

test('a network made just now is listed pending at once, a newly held slice only after its bridge exists, a network no longer carried leaves', () => {
  assert.equal(listedBeforeDevices({ 'acme/front': front }, { 'acme/front': front, 'acme/back': back }), { 'acme/front': front, 'acme/back': { state: 'pending', network: 'acme/back' } });
  assert.equal(listedBeforeDevices({ 'acme/back': { state: 'pending', network: 'acme/back' } }, { 'acme/back': back }), undefined, 'pending stays pending until the pass made the bridge (its own write lists it ready)');
  assert.equal(listedBeforeDevices({ 'acme/front': front, 'acme/back': back }, { 'acme/front': front }), { 'acme/front': front });
  assert.equal(listedBeforeDevices({ 'acme/front': front }, undefined), {});
});

test.run();
