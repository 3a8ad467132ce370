// Debian's Prometheus scrapes a real 3-node cluster the way an operator
// sets it up (docs/monitoring/prometheus.yml: HTTPS with the cluster CA, a
// viewer token as the bearer, the alerting rules loaded), and PromQL answers
// through Prometheus' HTTP API: every target up, exactly one leader, a
// counter a deploy increments rose, the commit index equal on every node once
// the cluster is quiet. The dashboards and rules cannot rot: every metric
// name they use is one the agents export, every dashboard expression runs in
// Prometheus, and every rule evaluates without error.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fetch } from 'undici';
import { parse, stringify } from 'yaml';
import { TestCluster, eventually, freePorts } from '../../agent/test/harness.js';
import { ALERTS_FILE, MONITORING_DIR, asQuery, dashboardExpressions, exportedNames, hivemindNamesIn, readDashboards, ruleExpressions, variableQueries } from './monitoring-files.js';

const HELLO = readFileSync(fileURLToPath(new URL('../../../../examples/hello.yaml', import.meta.url)), 'utf8');
const prometheusMissing = spawnSync('prometheus', ['--version']).error !== undefined;
const cluster = new TestCluster(50);
const withLogs = cluster.withLogs.bind(cluster);

/** Prometheus on loopback with a temporary config and data directory; `stop()` kills it (by pid) and removes both. */
class TestPrometheus {
  readonly root = mkdtempSync(join(tmpdir(), 'hivemind-prometheus-'));
  process: ChildProcess | undefined;
  port = 0;
  readonly output: string[] = [];

  /** Starts it with the documented scrape config, pointed at `targets` with this CA and token, scraping every second. */
  async start(options: { targets: string[]; caPem: string; token: string }): Promise<void> {
    writeFileSync(join(this.root, 'ca.crt'), options.caPem);
    writeFileSync(join(this.root, 'token'), options.token, { mode: 0o600 });
    const config = parse(readFileSync(join(MONITORING_DIR, 'prometheus.yml'), 'utf8'));
    config.global = { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
    config.rule_files = [ALERTS_FILE];
    const job = config.scrape_configs[0];
    job.tls_config.ca_file = join(this.root, 'ca.crt');
    job.authorization.credentials_file = join(this.root, 'token');
    job.static_configs = [{ targets: options.targets }];
    writeFileSync(join(this.root, 'prometheus.yml'), stringify(config));
    this.port = (await freePorts(1))[0]!;
    const child = spawn('prometheus', [
      `--config.file=${join(this.root, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(this.root, 'data')}`,
      `--web.listen-address=127.0.0.1:${this.port}`,
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    for (const stream of [child.stdout!, child.stderr!]) stream.setEncoding('utf8').on('data', (chunk: string) => this.output.push(chunk));
    await eventually('prometheus to be ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${this.output.join('')}`);
      const answer = await fetch(`http://127.0.0.1:${this.port}/-/ready`).catch(() => undefined);
      return answer?.status === 200;
    }, 20_000);
  }

  /** One instant query; throws on an error answer (bad PromQL), naming the query. */
  async query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const answer = await fetch(`http://127.0.0.1:${this.port}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await answer.json()) as { status: string; error?: string; data?: { resultType: string; result: any } };
    if (body.status !== 'success') throw new Error(`query ${promql}: ${body.error}`);
    return body.data!.resultType === 'vector' ? body.data!.result : [{ metric: {}, value: body.data!.result }];
  }

  /** The single value of a query that answers one series, or undefined when it answers none. */
  async scalar(promql: string): Promise<number | undefined> {
    const result = await this.query(promql);
    assert.ok(result.length <= 1, `${promql} answered ${result.length} series`);
    return result.length === 0 ? undefined : Number(result[0]!.value[1]);
  }

  async get(path: string): Promise<any> {
    return (await fetch(`http://127.0.0.1:${this.port}${path}`)).json();
  }

  async stop(): Promise<void> {
    const child = this.process;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}

const prometheus = new TestPrometheus();

test.after(async () => {
  await prometheus.stop();
  await cluster.cleanup();
});

test('three nodes; a viewer token for Prometheus; every metric the dashboards and rules use is exported', withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  // Voters or learners alike serve /metrics: no need to wait for the promotions.
  await Promise.all([cluster.join('n2', n1), cluster.join('n3', n1)]);
  const exported = new Set<string>();
  for (const node of cluster.running()) {
    const metrics = await node.request('GET', '/metrics');
    assert.is(metrics.status, 200);
    for (const name of exportedNames(metrics.body as string)) exported.add(name);
  }
  assert.ok(exported.has('hivemind_raft_leader'), 'hivemind_raft_leader is exported');
  const dashboards = readDashboards();
  const uses = [...dashboardExpressions(dashboards), ...variableQueries(dashboards), ...ruleExpressions()];
  const missing = uses.flatMap(({ where, expr }) => hivemindNamesIn(expr).filter((name) => !exported.has(name)).map((name) => `${where}: ${name}`));
  assert.equal(missing, [], `names no agent exports:\n${missing.join('\n')}`);
}));

test('Prometheus scrapes every node over HTTPS with the viewer token: all up, one leader', withLogs(async () => {
  if (prometheusMissing) return console.log('skipping the Prometheus tests: prometheus is not installed (apt-get install prometheus)');
  const n1 = cluster.node('n1');
  const created = await n1.request('POST', '/v1/tokens', { name: 'prometheus', role: 'viewer' });
  assert.is(created.status, 200, JSON.stringify(created.body));
  const caPem = readFileSync(join(n1.dataDir, 'tls', 'ca.crt'), 'utf8');
  const targets = cluster.running().map((node) => `127.0.0.1:${node.apiPort}`);
  await prometheus.start({ targets, caPem, token: created.body.token });
  await eventually('three targets up', async () => (await prometheus.scalar('count(up{job="hivemind"} == 1)')) === 3, 20_000, 250);
  const leaders = await eventually('a leader in the scrapes', async () => {
    const value = await prometheus.scalar('sum(hivemind_raft_leader{job="hivemind"})');
    return value === 1 ? value : undefined;
  }, 10_000, 250);
  assert.is(leaders, 1);
  const leader = await cluster.leader();
  const leading = await prometheus.query('hivemind_raft_leader{job="hivemind"} == 1');
  assert.equal(leading.map((series) => series.metric.node), [leader.name], 'the leader Prometheus sees is the one the nodes agree on');
}));

test('a deploy raises the executors\' started counter in Prometheus', withLogs(async () => {
  if (prometheusMissing) return;
  const started = 'sum(hivemind_executor_starts_total{job="hivemind", outcome="started"}) or vector(0)';
  const before = (await prometheus.scalar(started)) ?? 0;
  const deployed = await cluster.node('n2').request('POST', '/v1/deploy', { fileName: 'hello.yaml', content: HELLO });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  await eventually('two more instances started, as scraped', async () => ((await prometheus.scalar(started)) ?? 0) >= before + 2, 20_000, 250);
  await eventually('the state gauges see two instances meant to run', async () => (await prometheus.scalar('max(sum by (node) (hivemind_state_instances{job="hivemind"}))')) === 2, 10_000, 250);
}));

test('the commit index is equal on every node once the cluster is quiet', withLogs(async () => {
  if (prometheusMissing) return;
  await eventually('equal commit indexes in one scrape round', async () => {
    const spread = await prometheus.scalar('max(hivemind_raft_commit_index{job="hivemind"}) - min(hivemind_raft_commit_index{job="hivemind"})');
    const count = await prometheus.scalar('count(hivemind_raft_commit_index{job="hivemind"})');
    return spread === 0 && count === 3;
  }, 15_000, 250);
  assert.is(await prometheus.scalar('max(hivemind_raft_apply_lag_entries{job="hivemind"})'), 0);
}));

test('every dashboard expression runs in Prometheus; every rule evaluates without error', withLogs(async () => {
  if (prometheusMissing) return;
  for (const { where, expr } of dashboardExpressions(readDashboards())) {
    await prometheus.query(asQuery(expr, { node: 'n1' })).catch((error: Error) => assert.unreachable(`${where}: ${error.message}`));
  }
  const rules = await eventually('every rule evaluated', async () => {
    const answer = await prometheus.get('/api/v1/rules');
    const all = answer.data.groups.flatMap((group: any) => group.rules);
    return all.length > 0 && all.every((rule: any) => rule.lastEvaluation !== '0001-01-01T00:00:00Z') ? all : undefined;
  }, 10_000, 250);
  assert.is(rules.length, ruleExpressions().length);
  for (const rule of rules) assert.is(rule.health, 'ok', `${rule.name}: ${rule.lastError}`);
  const firing = await prometheus.query('ALERTS{alertname="HivemindLeaderless"}');
  assert.equal(firing, [], 'a cluster with a leader is not leaderless');
}));

test.run();
