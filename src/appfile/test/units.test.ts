import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { interpolate } from '../interpolate.js';
import { splitShellWords } from '../shell-words.js';
import { formatDurationMs, parseCpuMillis, parseDurationMs, parseMemoryBytes } from '../units.js';

test('durations in Compose (Go) form become milliseconds', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['10s', 10_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['1h2m3s4ms', 3_723_004],
    ['1500us', 2],
    ['2000000ns', 2],
    ['.5s', 500],
  ];
  for (const [text, expected] of cases) assert.is(parseDurationMs(text), expected, text);
  for (const text of ['soon', '', '10', '-1s', '1s2', 's', '1 s', '1d', '1S']) assert.is(parseDurationMs(text), undefined, text);
});

test('memory sizes are binary, as in Docker', () => {
  const cases: [string, number][] = [
    ['512M', 512 * 1024 ** 2],
    ['512m', 512 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1G', 1024 ** 3],
    ['1GB', 1024 ** 3],
    ['1.5GiB', 1.5 * 1024 ** 3],
    ['100k', 102_400],
    ['100kb', 102_400],
    ['2048', 2048],
    ['2048b', 2048],
    ['1 G', 1024 ** 3],
    ['2t', 2 * 1024 ** 4],
  ];
  for (const [text, expected] of cases) assert.is(parseMemoryBytes(text), expected, text);
  for (const text of ['lots', '', '1x', '-1M', '1ib', 'M', '1.2.3G']) assert.is(parseMemoryBytes(text), undefined, text);
});

test('CPU counts become thousandths of a core', () => {
  assert.is(parseCpuMillis('0.5'), 500);
  assert.is(parseCpuMillis('2'), 2000);
  assert.is(parseCpuMillis('.25'), 250);
  assert.is(parseCpuMillis('1.0005'), 1001);
  for (const text of ['fast', '', '-1', '1e3', '0x10']) assert.is(parseCpuMillis(text), undefined, text);
});

test('formatDurationMs writes Compose durations', () => {
  assert.is(formatDurationMs(0), '0s');
  assert.is(formatDurationMs(90_000), '1m30s');
  assert.is(formatDurationMs(3_600_500), '1h500ms');
});

test('command lines split like a shell splits words, without expanding anything', () => {
  const cases: [string, string[]][] = [
    ['node server.js --port 80', ['node', 'server.js', '--port', '80']],
    ['  spaced   out  ', ['spaced', 'out']],
    [`sh -c 'echo "hi there" && exit 1'`, ['sh', '-c', 'echo "hi there" && exit 1']],
    [`echo "a \\"quoted\\" word" 'single \\ stays'`, ['echo', 'a "quoted" word', 'single \\ stays']],
    ['echo a\\ b', ['echo', 'a b']],
    [`echo ""`, ['echo', '']],
    [`echo pre"mid"'post'`, ['echo', 'premidpost']],
    ['echo $HOME | cat', ['echo', '$HOME', '|', 'cat']],
    ['', []],
  ];
  for (const [text, words] of cases) assert.equal(splitShellWords(text), { ok: true, words }, text);
  assert.equal(splitShellWords(`echo "open`), { ok: false, problem: 'has a " quote that is never closed' });
  assert.equal(splitShellWords(`echo 'open`), { ok: false, problem: "has a ' quote that is never closed" });
  assert.equal(splitShellWords('echo \\'), { ok: false, problem: 'ends with a backslash that escapes nothing' });
});

test('interpolation follows Compose: $VAR, ${VAR}, defaults, errors, $$', () => {
  const variables: Record<string, string> = { TAG: '1.25', EMPTY: '' };
  const lookup = (name: string): string | undefined => variables[name];
  const value = (text: string): string => {
    const result = interpolate(text, lookup);
    if (!result.ok) throw new Error(result.problem);
    return result.value;
  };
  assert.is(value('nginx:${TAG}'), 'nginx:1.25');
  assert.is(value('nginx:$TAG'), 'nginx:1.25');
  assert.is(value('price $$5'), 'price $5');
  assert.is(value('${MISSING:-fallback}'), 'fallback');
  assert.is(value('${EMPTY:-fallback}'), 'fallback');
  assert.is(value('${EMPTY-fallback}'), '');
  assert.is(value('${MISSING-fallback}'), 'fallback');
  assert.is(value('${TAG:+set}'), 'set');
  assert.is(value('${EMPTY:+set}'), '');
  assert.is(value('${EMPTY+set}'), 'set');
  assert.is(value('${MISSING:-${TAG}}'), '1.25');
  assert.is(value('no dollars'), 'no dollars');
  assert.equal(interpolate('a ${MISSING} b $ALSO', lookup), { ok: true, value: 'a  b ', unset: ['MISSING', 'ALSO'] });
  assert.equal(interpolate('${MISSING:?set it first}', lookup), { ok: false, problem: 'needs variable MISSING, which is not set: set it first' });
  assert.equal(interpolate('${EMPTY:?}', lookup), { ok: false, problem: 'needs variable EMPTY, which is empty' });
  assert.equal(interpolate('${TAG', lookup), { ok: false, problem: 'has "${" without a closing "}"' });
  assert.equal(interpolate('cost $5', lookup), { ok: false, problem: 'has a "$" that does not start a variable; write "$$" for a literal "$"' });
  assert.equal(interpolate('${1X}', lookup), { ok: false, problem: 'has "${1X}", which does not name a variable' });
  assert.equal(interpolate('${TAG/x}', lookup), { ok: false, problem: 'has "${TAG/x}"; after the name, use :-, -, :?, ?, :+ or +' });
});

test.run();
