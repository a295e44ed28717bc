// The container image and the Kubernetes manifests, checked offline (no Docker engine, no cluster):
// the Dockerfile is linted (dockerfile-utils, the linter of VS Code's Docker support) and read
// instruction by instruction (dockerfile-ast) for what the image promises (a build stage with the
// compilers, a slim non-root runtime, HEALTHCHECK on /health, the port, the command, every COPY
// source present and not ignored); each manifest document is validated against the Kubernetes API
// schemas (kubernetes-models' validators), then checked for what the deployment promises (probes on
// /health, a preStop and a grace period that covers the drain, resources, a Service that reaches the
// pods, an HPA on a metric that /metrics really exports), and against the Dockerfile.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Copy, DockerfileParser, type Instruction } from 'dockerfile-ast';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { buildServer } from '../src/server/app.ts';
import { FakeEngine } from './helpers/fake-engine.ts';

const root = join(import.meta.dirname, '..');
const k8sDir = join(root, 'deploy', 'k8s');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

// ---------------------------------------------------------------------------------------------
// The Dockerfile

const instructions = DockerfileParser.parse(dockerfile).getInstructions();
/** Instructions grouped by build stage (each FROM starts one). */
const stages: Instruction[][] = [];
for (const i of instructions) {
  if (i.getKeyword() === 'FROM') stages.push([]);
  stages.at(-1)?.push(i);
}
const argsOf = (i: Instruction) => i.getArguments().map((a) => a.getValue());
/** A COPY's --from stage, if any. */
const copyFrom = (i: Instruction) => (i instanceof Copy ? (i.getFromFlag()?.getValue() ?? undefined) : undefined);
/** An exec-form (JSON array) instruction's strings. */
const jsonOf = (i: Instruction): string[] => JSON.parse(i.getArgumentsContent()!.replace(/\\\n/g, ' ')) as string[];
const only = (stage: Instruction[], keyword: string) => {
  const found = stage.filter((i) => i.getKeyword() === keyword);
  assert.equal(found.length, 1, `one ${keyword} in the stage`);
  return found[0]!;
};
const runtime = () => stages.at(-1)!;
const exposedPort = () => Number(argsOf(only(runtime(), 'EXPOSE'))[0]);

/** .dockerignore patterns, as prefixes (enough for the plain names it holds). */
const ignored = readFileSync(join(root, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const isIgnored = (path: string) => ignored.some((p) => !p.includes('*') && (path === p || path.startsWith(p + '/')));

describe('Dockerfile', () => {
  test('lints clean', () => {
    const problems = lintDockerfile(dockerfile);
    assert.deepEqual(problems.map((p) => `${p.range.start.line + 1}: ${p.message}`), []);
    // The linter is live: it does flag a broken file.
    assert.ok(lintDockerfile('FROM node:20\nEXPOSE eighty\nHEALTHCHECK --interval=abc CMD true\n').length > 0);
  });

  test('a build stage with the compilers runs npm ci; a slim runtime stage takes its results', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    const [build] = stages;
    const buildName = argsOf(build![0]!)[2];
    assert.ok(buildName, 'the build stage is named');
    const runs = build!.filter((i) => i.getKeyword() === 'RUN').map((i) => argsOf(i));
    for (const tool of ['python3', 'make', 'g++']) assert.ok(runs.some((r) => r.includes('install') && r.includes(tool)), `installs ${tool}`);
    assert.ok(runs.some((r) => r.join(' ').includes('npm ci')), 'runs npm ci');
    assert.match(argsOf(runtime()[0]!)[0]!, /-slim$/, 'a slim base image at run time');
    const fromBuild = runtime()
      .filter((i) => i.getKeyword() === 'COPY' && copyFrom(i) === buildName)
      .map((i) => argsOf(i)[0]);
    assert.ok(fromBuild.includes('/app/node_modules'), 'the installed dependencies');
    assert.ok(fromBuild.includes('/app/build/Release/slipstream.node'), 'the compiled native core');
    // It is where src/tensor/native.ts loads it from.
    assert.match(readFileSync(join(root, 'src/tensor/native.ts'), 'utf8'), /join\(root\(\), 'build', 'Release', 'slipstream\.node'\)/);
  });

  test('every COPY from the context exists and is not in .dockerignore; node_modules and build are', () => {
    for (const i of instructions.filter((x) => x.getKeyword() === 'COPY' && copyFrom(x) === undefined)) {
      const paths = argsOf(i);
      for (const src of paths.slice(0, -1)) {
        assert.ok(existsSync(join(root, src)), `COPY ${src}: not in the repository`);
        assert.ok(!isIgnored(src), `COPY ${src}: excluded by .dockerignore`);
      }
    }
    assert.ok(isIgnored('node_modules') && isIgnored('build'), 'host builds stay out of the context');
  });

  test('runs as a non-root user, exposes the port, checks /health, starts `serve` on all interfaces', () => {
    const user = argsOf(only(runtime(), 'USER'))[0]!;
    assert.ok(!['root', '0'].includes(user.split(':')[0]!), `USER ${user}`);
    assert.equal(exposedPort(), 8000);
    const hc = only(runtime(), 'HEALTHCHECK').getArgumentsContent()!.replace(/\\\n/g, ' ');
    const cmd = /CMD\s+(\[.*\])\s*$/s.exec(hc);
    assert.ok(cmd, 'HEALTHCHECK CMD in exec form');
    assert.ok((JSON.parse(cmd[1]!) as string[]).join(' ').includes(`http://127.0.0.1:${exposedPort()}/health`));
    const command = [...jsonOf(only(runtime(), 'ENTRYPOINT')), ...jsonOf(only(runtime(), 'CMD'))];
    assert.deepEqual(command.slice(0, 3), ['node', 'bin/slipstream.js', 'serve']);
    assert.ok(existsSync(join(root, 'bin/slipstream.js')));
    assert.equal(command[command.indexOf('--host') + 1], '0.0.0.0');
    assert.equal(Number(command[command.indexOf('--port') + 1]), exposedPort());
  });
});

// ---------------------------------------------------------------------------------------------
// The Kubernetes manifests

type Obj = Record<string, any>;
const VALIDATORS: Record<string, (o: Obj) => void> = {
  'apps/v1 Deployment': (o) => new Deployment(o as never).validate(),
  'v1 Service': (o) => new Service(o as never).validate(),
  'autoscaling/v2 HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscaler(o as never).validate(),
  'policy/v1 PodDisruptionBudget': (o) => new PodDisruptionBudget(o as never).validate(),
};

function loadYaml(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(join(k8sDir, file), 'utf8'));
  assert.ok(Array.isArray(docs), `${file}: not YAML`);
  return docs.map((d) => {
    assert.deepEqual([...d.errors, ...d.warnings].map((e) => e.message), [], file);
    return d.toJS() as Obj;
  });
}

const manifestFiles = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
const objects = manifestFiles.flatMap((f) => loadYaml(f).map((o) => ({ file: f, o })));
const find = (kind: string): Obj => {
  const found = objects.filter((x) => x.o.kind === kind);
  assert.equal(found.length, 1, `one ${kind}`);
  return found[0]!.o;
};
const matches = (selector: Obj, labels: Obj) => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('Kubernetes manifests', () => {
  test('every document validates against the Kubernetes API schema', () => {
    assert.ok(objects.length >= 4);
    for (const { file, o } of objects) {
      const v = VALIDATORS[`${o.apiVersion} ${o.kind}`];
      assert.ok(v, `${file}: no validator for ${o.apiVersion} ${o.kind}`);
      assert.doesNotThrow(() => v(o), `${file}: ${o.kind}`);
    }
    // The validator is live: a wrong type and a missing field are caught.
    const bad = structuredClone(find('Deployment'));
    bad.spec.replicas = 'two';
    assert.throws(() => VALIDATORS['apps/v1 Deployment']!(bad), /replicas/);
    delete bad.spec.selector;
    bad.spec.replicas = 1;
    assert.throws(() => VALIDATORS['apps/v1 Deployment']!(bad), /selector/);
  });

  test('kustomization.yaml lists exactly the manifests', () => {
    const [k] = loadYaml('kustomization.yaml');
    assert.deepEqual([...k!.resources].sort(), [...manifestFiles].sort());
  });

  test('Deployment: probes on /health, a preStop and a grace period covering the drain, resources, the image command', () => {
    const d = find('Deployment');
    const pod = d.spec.template;
    assert.ok(matches(d.spec.selector.matchLabels, pod.metadata.labels), 'selector matches the pod labels');
    assert.equal(pod.spec.containers.length, 1);
    const c = pod.spec.containers[0];
    const http = c.ports.find((p: Obj) => p.name === 'http');
    assert.equal(http.containerPort, exposedPort(), 'the port the image exposes');
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      assert.equal(c[probe]?.httpGet?.path, '/health', probe);
      assert.equal(c[probe].httpGet.port, 'http', probe);
    }
    // Liveness must not kill a draining pod (its /health answers 503 for up to the grace period).
    const liveness = c.livenessProbe;
    const graceSeconds = pod.spec.terminationGracePeriodSeconds as number;
    assert.ok(liveness.periodSeconds * liveness.failureThreshold > graceSeconds, 'liveness outlasts the drain');
    // preStop, then SIGTERM and the server's drain: the grace period covers both.
    const preStop = c.lifecycle.preStop;
    const preStopSeconds = preStop.sleep?.seconds ?? Number(preStop.exec.command.at(-1));
    assert.ok(preStopSeconds > 0 && preStopSeconds <= 30, 'preStop sleeps');
    const drainMs = Number(/const GRACE_MS = ([\d_]+)/.exec(readFileSync(join(root, 'src/cli/serve.ts'), 'utf8'))?.[1]?.replaceAll('_', '') ?? 30_000);
    assert.ok(graceSeconds >= preStopSeconds + drainMs / 1000, `terminationGracePeriodSeconds ${graceSeconds} < ${preStopSeconds} + ${drainMs / 1000}`);
    for (const kind of ['requests', 'limits']) for (const r of ['cpu', 'memory']) assert.ok(c.resources[kind][r], `resources.${kind}.${r}`);
    assert.equal(pod.spec.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    // The args replace the image's CMD; the ENTRYPOINT stays.
    assert.deepEqual(jsonOf(only(runtime(), 'ENTRYPOINT')), ['node', 'bin/slipstream.js']);
    const args: string[] = c.args;
    assert.equal(args[0], 'serve');
    assert.equal(args[args.indexOf('--host') + 1], '0.0.0.0');
    assert.equal(Number(args[args.indexOf('--port') + 1]), http.containerPort);
    assert.ok(['text', 'json'].includes(args[args.indexOf('--log-format') + 1]!));
    // A read-only root file system needs somewhere to write: /tmp (tsx) and the model cache.
    if (c.securityContext.readOnlyRootFilesystem) {
      const mounts = c.volumeMounts.map((m: Obj) => m.mountPath);
      assert.ok(mounts.includes('/tmp'));
      const cache = c.env.find((e: Obj) => e.name === 'SLIPSTREAM_CACHE')?.value ?? '/cache';
      assert.ok(mounts.includes(cache), `the cache ${cache} is mounted`);
    }
  });

  test('Service and PodDisruptionBudget reach the pods; the Service port targets the container port', () => {
    const pod = find('Deployment').spec.template;
    const svc = find('Service');
    assert.ok(matches(svc.spec.selector, pod.metadata.labels));
    const names = pod.spec.containers[0].ports.map((p: Obj) => p.name);
    for (const p of svc.spec.ports) assert.ok(names.includes(p.targetPort) || p.targetPort === exposedPort(), `targetPort ${p.targetPort}`);
    assert.ok(matches(find('PodDisruptionBudget').spec.selector.matchLabels, pod.metadata.labels));
  });

  test('HPA: autoscaling/v2 on a Pods metric that /metrics exports', async () => {
    const hpa = find('HorizontalPodAutoscaler');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', find('Deployment').metadata.name]);
    const metric = hpa.spec.metrics.find((m: Obj) => m.type === 'Pods');
    assert.ok(metric, 'a Pods metric');
    const name: string = metric.pods.metric.name;
    assert.match(name, /waiting/);
    const app = buildServer(new FakeEngine());
    try {
      const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
      assert.match(text, new RegExp(`^# TYPE ${name} gauge$`, 'm'), `${name} is exported as a gauge`);
    } finally {
      await app.close();
    }
    assert.ok(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
  });
});
