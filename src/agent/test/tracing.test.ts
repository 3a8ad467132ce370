// Traces of one deploy across three real agents: each exports over OTLP/HTTP
// (--otlp-endpoint) to a small receiver in this test, which keeps the spans the
// exporter sends (OTLP JSON). A deploy sent to a follower must make one trace:
// the follower's API request, its forward, the leader's request, propose and
// commit, the apply on all three nodes, the scheduler's round and placement,
// and the executor's starts of the instances with their first healthy check;
// every span's parent in the same trace. A log line written inside the deploy
// (the executor's start) carries the trace id.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TestCluster, eventually } from './harness.js';

/** One span as the receiver keeps it: the OTLP JSON fields the checks read, and the node (resource) that sent it. */
interface ReceivedSpan {
  node: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpExport {
  resourceSpans?: { resource?: { attributes?: OtlpAttribute[] }; scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; attributes?: OtlpAttribute[] }[] }[] }[];
}

function attributesOf(list: OtlpAttribute[] | undefined): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) result[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : value.boolValue);
  return result;
}

/** The OTLP/HTTP receiver: POST /v1/traces with a JSON body (what @opentelemetry/exporter-trace-otlp-http sends). */
class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly contentTypes = new Set<string>();
  private readonly server: Server = createServer((request, response) => void this.receive(request, response));

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async receive(request: IncomingMessage, response: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    this.contentTypes.add(String(request.headers['content-type']));
    if (request.method !== 'POST' || request.url !== '/v1/traces') {
      response.writeHead(404).end();
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
    for (const resourceSpans of body.resourceSpans ?? []) {
      const node = String(attributesOf(resourceSpans.resource?.attributes)['hivemind.node.id']);
      for (const scope of resourceSpans.scopeSpans ?? []) {
        for (const span of scope.spans ?? []) {
          this.spans.push({ node, traceId: span.traceId, spanId: span.spanId, parentSpanId: span.parentSpanId ?? '', name: span.name, attributes: attributesOf(span.attributes) });
        }
      }
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  }
}

const receiver = new OtlpReceiver();
const endpoint = await receiver.start();
const cluster = new TestCluster(50, ['--otlp-endpoint', endpoint]);

test.after(async () => {
  await cluster.cleanup();
  await receiver.stop();
});

const APP = [
  'services:',
  '  traced:',
  '    command: ["sleep", "300"]',
  '    healthcheck:',
  '      test: ["CMD", "true"]',
  '      interval: 1s',
  '      timeout: 1s',
  '      retries: 1',
  '    deploy:',
  '      replicas: 3',
  '',
].join('\n');

test('one deploy through a follower is one trace: request, forward, propose, commit, apply on 3 nodes, placement, starts, healthy', cluster.withLogs(async () => {
  const n1 = await cluster.bootstrap('n1');
  await cluster.join('n2', n1);
  await cluster.join('n3', n1);
  await eventually('three voters', async () => (await n1.status()).voters.length === 3);
  const leader = await cluster.leader();
  const follower = cluster.running().find((node) => node !== leader)!;

  const deployed = await follower.request('POST', '/v1/deploy', { fileName: 'traced.yaml', content: APP });
  assert.is(deployed.status, 200, JSON.stringify(deployed.body));
  await eventually('the 3 instances to be healthy', async () => {
    const instances = (await leader.request('GET', '/v1/apps/default/traced')).body?.instances as { status: { state: string } }[] | undefined;
    return instances?.length === 3 && instances.every((instance) => instance.status.state === 'healthy');
  }, 30_000, 200);

  const request = await eventually('the follower\'s span of the deploy request', () =>
    receiver.spans.find((span) => span.node === follower.name && span.name === 'POST /v1/deploy'), 10_000, 100);
  assert.is(request.attributes['http.response.status_code'], 200);
  assert.is(request.attributes['hivemind.api.route_key'], 'POST /v1/deploy');
  assert.is(request.parentSpanId, '', 'the request starts the trace (the client sent no traceparent)');
  const inTrace = (): ReceivedSpan[] => receiver.spans.filter((span) => span.traceId === request.traceId);
  const has = (name: string, node?: string): boolean => inTrace().some((span) => span.name === name && (node === undefined || span.node === node));
  // Each node exports its spans in batches (each second), a child's batch maybe before its parent's: once the
  // instances are healthy and their reports applied, the trace stops growing and every parent arrives.
  const connected = (spans: ReceivedSpan[]): boolean => spans.every((span) => span === request || spans.some((parent) => parent.spanId === span.parentSpanId));
  const spans = await eventually('the trace of the deploy to reach the healthy checks, every span\'s parent in it', () => {
    const found = inTrace();
    return found.filter((span) => span.name === 'executor.healthy').length === 3 && connected(found) ? found : undefined;
  }, 15_000, 200);
  const byId = new Map(spans.map((span) => [span.spanId, span]));
  const parentOf = (span: ReceivedSpan): ReceivedSpan | undefined => byId.get(span.parentSpanId);
  const describe = spans.map((span) => `${span.node} ${span.name} ${span.spanId} <- ${span.parentSpanId || '-'}`).join('\n');

  const forward = spans.find((span) => span.name === 'api.forward' && span.node === follower.name);
  assert.ok(forward !== undefined && parentOf(forward) === request, `the follower forwards inside its request:\n${describe}`);
  const leaderRequest = spans.find((span) => span.name === 'POST /v1/deploy' && span.node === leader.name);
  assert.ok(leaderRequest !== undefined && parentOf(leaderRequest) === forward, `the leader's request is a child of the forward:\n${describe}`);
  const propose = spans.find((span) => span.name === 'raft.propose' && span.node === leader.name && (span.attributes['hivemind.command.type'] === 'app.deploy' || span.attributes['hivemind.command.type'] === 'app.deploy-many') && parentOf(span) === leaderRequest);
  assert.ok(propose !== undefined, `the leader proposes the deploy:\n${describe}`);
  assert.ok(spans.some((span) => span.name === 'raft.commit' && parentOf(span) === propose), 'its commit is a child of the proposal');
  const applies = spans.filter((span) => span.name === 'state.apply' && parentOf(span) === propose);
  assert.equal(applies.map((span) => span.node).sort(), ['n1', 'n2', 'n3'], `the deploy is applied on the three nodes:\n${describe}`);

  const round = spans.find((span) => span.name === 'scheduler.round' && span.node === leader.name);
  assert.ok(round !== undefined, `the scheduler's round is in the trace:\n${describe}`);
  const placement = spans.find((span) => span.name === 'scheduler.placement' && parentOf(span) === round);
  assert.ok(placement !== undefined, 'its placement is a child of the round');
  const placeProposal = spans.find((span) => span.name === 'raft.propose' && span.attributes['hivemind.command.type'] === 'instance.place' && parentOf(span) === placement);
  assert.ok(placeProposal !== undefined, `the placement is proposed:\n${describe}`);
  const placeApplies = spans.filter((span) => span.name === 'state.apply' && parentOf(span) === placeProposal);
  assert.equal(placeApplies.map((span) => span.node).sort(), ['n1', 'n2', 'n3'], 'the placement is applied on the three nodes');

  const starts = spans.filter((span) => span.name === 'executor.start');
  assert.is(starts.length, 3, `three starts:\n${describe}`);
  for (const start of starts) {
    assert.ok(placeApplies.includes(parentOf(start)!), `${start.node}'s start is a child of the placement's apply there`);
    assert.is(parentOf(start)!.node, start.node);
    assert.is(start.attributes['hivemind.runtime'], 'process');
    assert.ok(spans.some((span) => span.name === 'executor.process' && parentOf(span) === start), `${start.node}'s start runs the process in a span of its own`);
    assert.ok(spans.some((span) => span.name === 'executor.healthy' && parentOf(span) === start), `${start.node}'s instance became healthy in the trace`);
  }
  assert.ok(spans.every((span) => span.node === 'n1' || span.node === 'n2' || span.node === 'n3'));
  const clusterIds = new Set(spans.map((span) => span.attributes['hivemind.cluster.id']));
  assert.is(clusterIds.size, 1, 'every node names the same cluster');
  assert.match(String([...clusterIds][0]), /^[0-9a-f]{16}$/);

  // The log: the executor's start line carries the trace id (the harness shows JSON log lines readable, with it).
  const started = [...cluster.nodes.values()].flatMap((node) => node.stderr).filter((line) => line.includes('executor: started instance default.traced.'));
  assert.is(started.length, 3, cluster.logs());
  for (const line of started) assert.ok(line.endsWith(`[trace ${request.traceId}]`), line);
  assert.equal([...receiver.contentTypes], ['application/json']);
}));

test.run();
