// A docker-compose.yml as teams write them, deployed as it is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { validateCommand } from '../../state/validate.js';
import { parseAppFile } from '../parse.js';
import { dedent } from './helpers.js';

const MiB = 1024 ** 2;

const stack = dedent(`
  version: "3.8"
  name: shop

  x-logging-defaults: &app-defaults
    restart: unless-stopped
    environment: &common-env
      LOG_LEVEL: info
      TZ: UTC

  services:
    frontend:
      image: registry.example.com/shop/frontend:\${FRONTEND_TAG:-2.4.1}
      ports:
        - "80:8080"
        - target: 8443
          published: 443
          protocol: tcp
          mode: ingress
      environment:
        <<: *common-env
        API_URL: http://api.default.hivemind:3000
      depends_on:
        - api
      healthcheck:
        test: ["CMD", "wget", "-q", "--spider", "http://localhost:8080/healthz"]
        interval: 15s
        timeout: 5s
        retries: 3
        start_period: 30s
      deploy:
        replicas: 3
        update_config:
          parallelism: 1
          delay: 10s
          order: start-first
          failure_action: rollback
        resources:
          limits: { cpus: "0.50", memory: 256M }
          reservations: { cpus: "0.10", memory: 64M }
        placement:
          constraints: [node.labels.tier == edge]
      networks: [public, internal]
      labels:
        com.example.component: frontend

    api:
      <<: *app-defaults
      image: registry.example.com/shop/api:3.1.0
      entrypoint: ["/app/bin/api"]
      environment:
        - DATABASE_URL=postgres://shop@db.default.hivemind:5432/shop
        - REDIS_URL=redis://cache.default.hivemind:6379
        - WORKERS=4
      secrets:
        - db-password
      volumes:
        - uploads:/srv/uploads
        - /etc/ssl/certs:/etc/ssl/certs:ro
      user: "1000:1000"
      working_dir: /app
      read_only: true
      depends_on:
        db:
          condition: service_healthy
      deploy:
        replicas: 2
        resources:
          limits: { cpus: 1, memory: 1G }
        restart_policy:
          condition: on-failure
          delay: 5s
          max_attempts: 3
          window: 2m
      x-hivemind:
        policies: [api-ingress]
        priority: 10

    worker:
      <<: *app-defaults
      command: node /srv/worker/index.js --queue emails
      environment:
        <<: *common-env
        CONCURRENCY: 8
      mem_limit: 512m
      cpus: 0.5
      scale: 2

    db:
      image: postgres:16
      environment:
        POSTGRES_USER: shop
        POSTGRES_DB: shop
        POSTGRES_PASSWORD_FILE: /run/secrets/db-password
      secrets: [db-password]
      volumes:
        - type: volume
          source: pgdata
          target: /var/lib/postgresql/data
      healthcheck:
        test: pg_isready -U shop
        interval: 10s
      deploy:
        placement:
          constraints:
            - node.labels.disk == ssd
          max_replicas_per_node: 1
      x-hivemind:
        tenant: data

  volumes:
    uploads:
    pgdata:
      external: true

  secrets:
    db-password:
      file: ./secrets/db-password.txt

  networks:
    public:
    internal:
`);

const stackFiles = { './secrets/db-password.txt': 'pa55word' };

test('a realistic multi-service compose file deploys as it is', () => {
  const result = parseAppFile(stack, 'docker-compose.yml', { defaultTenant: 'shop', files: stackFiles });
  if (!result.ok) throw new Error(result.errors.map(String).join('\n'));
  assert.equal(
    result.apps.map((app) => [app.name, app.tenant, app.replicas]),
    [
      ['frontend', 'shop', 3],
      ['api', 'shop', 2],
      ['worker', 'shop', 2],
      ['db', 'data', 1],
    ],
  );
  for (const spec of result.apps) assert.ok(validateCommand({ type: 'app.deploy', spec }).ok, spec.name);
  const [frontend, api, worker, db] = result.apps;

  assert.is(frontend?.image, 'registry.example.com/shop/frontend:2.4.1');
  assert.equal(frontend?.ports, [
    { target: 8080, published: 80, protocol: 'tcp' },
    { target: 8443, published: 443, protocol: 'tcp' },
  ]);
  assert.equal(frontend?.environment, { LOG_LEVEL: 'info', TZ: 'UTC', API_URL: 'http://api.default.hivemind:3000' });
  assert.equal(frontend?.update, { parallelism: 1, delayMs: 10_000, failureAction: 'rollback', order: 'start-first', monitorMs: 5000 });
  assert.equal(frontend?.limits, { cpuMillis: 500, memoryBytes: 256 * MiB });
  assert.equal(frontend?.reservations, { cpuMillis: 100, memoryBytes: 64 * MiB });
  assert.equal(frontend?.constraints, ['node.labels.tier == edge']);
  assert.equal(frontend?.healthcheck, { test: ['CMD', 'wget', '-q', '--spider', 'http://localhost:8080/healthz'], intervalMs: 15_000, timeoutMs: 5000, retries: 3, startPeriodMs: 30_000 });

  assert.equal(api?.entrypoint, ['/app/bin/api']);
  assert.equal(api?.environment, {
    DATABASE_URL: 'postgres://shop@db.default.hivemind:5432/shop',
    REDIS_URL: 'redis://cache.default.hivemind:6379',
    WORKERS: '4',
  });
  assert.equal(api?.volumes, [
    { source: 'uploads', target: '/srv/uploads', readOnly: false },
    { source: '/etc/ssl/certs', target: '/etc/ssl/certs', readOnly: true },
  ]);
  assert.equal([api?.user, api?.workingDir, api?.readOnly], ['1000:1000', '/app', true]);
  assert.equal(api?.restart, { condition: 'on-failure', delayMs: 5000, maxAttempts: 3, windowMs: 120_000 });
  assert.equal(api?.hivemind, { priority: 10, policies: ['api-ingress'], secrets: ['db-password'] });

  assert.equal(worker?.command, ['node', '/srv/worker/index.js', '--queue', 'emails']);
  assert.equal(worker?.environment, { LOG_LEVEL: 'info', TZ: 'UTC', CONCURRENCY: '8' });
  assert.equal(worker?.limits, { cpuMillis: 500, memoryBytes: 512 * MiB });
  assert.equal(worker?.restart, { condition: 'any', delayMs: 5000, windowMs: 0 });

  assert.equal(db?.volumes, [{ source: 'pgdata', target: '/var/lib/postgresql/data', readOnly: false }]);
  assert.equal(db?.healthcheck?.test, ['CMD-SHELL', 'pg_isready -U shop']);
  assert.equal(db?.hivemind, { secrets: ['db-password'], maxPerNode: 1 });
});

test('what the file has that Hivemind does not use is named in warnings', () => {
  const result = parseAppFile(stack, 'docker-compose.yml', { files: stackFiles });
  assert.ok(result.ok);
  assert.equal(result.warnings, [
    'docker-compose.yml: services.frontend.depends_on: is ignored: Hivemind starts every app at once; an app should retry until the apps it needs are healthy',
    'docker-compose.yml: services.api.depends_on: is ignored: Hivemind starts every app at once; an app should retry until the apps it needs are healthy',
    'docker-compose.yml: services.api.restart: is ignored because deploy.restart_policy is set, which takes precedence',
  ]);
});

test('the same file with the usual Compose-only settings reports each of them, and deploys nothing', () => {
  const withExtras = stack
    .replace('    image: postgres:16\n', '    image: postgres:16\n    container_name: shop-db\n    shm_size: 256m\n')
    .replace('    command: node /srv/worker/index.js --queue emails\n', '    build: ./worker\n    command: node /srv/worker/index.js --queue emails\n');
  const result = parseAppFile(withExtras, 'docker-compose.yml', { files: stackFiles });
  assert.ok(!result.ok);
  assert.equal(result.errors.map(String), [
    'docker-compose.yml: services.worker.build: is not supported: Hivemind builds no images; build it (docker build -t NAME .), make it available (push it to a registry, or hivemind images import), and name it in image:',
    'docker-compose.yml: services.db.shm_size: is not supported by Hivemind',
  ]);
  assert.ok(result.warnings.includes('docker-compose.yml: services.db.container_name: is a DNS alias of the app: other apps reach it as shop-db; instances are named by Hivemind'), result.warnings.join('\n'));
});

test.run();
