#!/usr/bin/env node
// What the rendered manifests of each kustomization must say about ist (as
// opposed to validate.js, which checks them against Kubernetes' rules).
//
// usage: node assert_rendered.js base|dev|prod|submit|submit-tls FILE
// Prints one line per failed expectation and exits 1 if any failed.
"use strict";

const fs = require("fs");
const yaml = require("js-yaml");

const [target, file] = process.argv.slice(2);
if (!target || !file) {
  process.stderr.write("usage: node assert_rendered.js TARGET FILE\n");
  process.exit(2);
}
const objs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
const problems = [];
const expect = (cond, msg) => {
  if (!cond) problems.push(msg);
};
const find = (kind, name) =>
  objs.find((o) => o.kind === kind && o.metadata && o.metadata.name === name);
const findPrefix = (kind, prefix) =>
  objs.find((o) => o.kind === kind && o.metadata && o.metadata.name.startsWith(prefix));
const container = (obj, name) =>
  obj && obj.spec.template.spec.containers.find((c) => c.name === name);
const UID = 10001;

function podBasics(obj, label) {
  const pod = obj.spec.template.spec;
  const sc = pod.securityContext || {};
  expect(sc.runAsNonRoot === true && sc.runAsUser === UID,
         `${label}: pod must run as non-root uid ${UID} (the images' USER)`);
  for (const c of pod.containers) {
    const r = c.resources || {};
    expect(r.requests && r.requests.cpu && r.requests.memory && r.limits && r.limits.cpu && r.limits.memory,
           `${label}/${c.name}: needs cpu and memory requests and limits`);
    expect(c.securityContext && c.securityContext.allowPrivilegeEscalation === false,
           `${label}/${c.name}: allowPrivilegeEscalation must be false`);
  }
}

function scrape(obj, port, label) {
  const a = obj.spec.template.metadata.annotations || {};
  expect(a["prometheus.io/scrape"] === "true" && a["prometheus.io/port"] === String(port) &&
         a["prometheus.io/path"] === "/metrics",
         `${label}: pod needs prometheus.io scrape annotations for port ${port}`);
  const c = obj.spec.template.spec.containers[0];
  expect((c.ports || []).some((p) => p.containerPort === port && p.name === "metrics"),
         `${label}: container port ${port} named metrics`);
}

function configValue(obj, key) {
  const c = obj.spec.template.spec.containers[0];
  for (const ef of c.envFrom || []) {
    const cm = ef.configMapRef && find("ConfigMap", ef.configMapRef.name);
    if (cm && cm.data && key in cm.data) return cm.data[key];
  }
  return undefined;
}

// The value a flag gets once the kubelet expands $(VAR) from the ConfigMap.
function flag(obj, name) {
  const c = obj.spec.template.spec.containers[0];
  let value;
  for (const a of c.args || []) {
    if (a.startsWith(`--${name}=`)) value = a.slice(name.length + 3);
  }
  if (value === undefined) return undefined;
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => {
    const x = configValue(obj, v);
    return x === undefined ? m : x;
  });
}

function grpcProbes(c, port, label) {
  for (const p of ["readinessProbe", "livenessProbe"]) {
    expect(c[p] && c[p].grpc && c[p].grpc.port === port, `${label}: ${p} must be grpc on ${port}`);
  }
}

function cluster(workers, tls) {
  const ss = find("StatefulSet", "ist-coordinator");
  const dep = find("Deployment", "ist-worker");
  expect(ss, "StatefulSet ist-coordinator missing");
  expect(dep, "Deployment ist-worker missing");
  if (!ss || !dep) return;
  expect(ss.spec.replicas === 1, "coordinator: exactly 1 replica");
  const vct = (ss.spec.volumeClaimTemplates || [])[0];
  const cc = container(ss, "coordinator");
  const ckpt = flag(ss, "checkpoint_dir");
  expect(vct && cc.volumeMounts.some((m) => m.name === vct.metadata.name && m.mountPath === ckpt),
         `coordinator: a volumeClaimTemplate must be mounted at --checkpoint_dir (${ckpt})`);
  expect(flag(ss, "listen") === "0.0.0.0:7070", "coordinator: --listen=0.0.0.0:7070");
  expect(flag(ss, "metrics_listen") === "0.0.0.0:9090", "coordinator: --metrics_listen=0.0.0.0:9090");
  const svc = find("Service", "ist-coordinator");
  expect(svc && [7070, 9090].every((p) => svc.spec.ports.some((x) => x.port === p)),
         "Service ist-coordinator must expose 7070 and 9090");
  scrape(ss, 9090, "coordinator");
  podBasics(ss, "coordinator");

  expect(dep.spec.replicas === workers, `workers: ${workers} replicas, got ${dep.spec.replicas}`);
  expect(flag(dep, "coordinator") === "ist-coordinator:7070",
         `workers: --coordinator must resolve to ist-coordinator:7070, got ${flag(dep, "coordinator")}`);
  expect(flag(dep, "health_listen") === "0.0.0.0:7071", "workers: --health_listen=0.0.0.0:7071");
  expect(flag(dep, "metrics_listen") === "0.0.0.0:9091", "workers: --metrics_listen=0.0.0.0:9091");
  const wc = container(dep, "worker");
  grpcProbes(wc, 7071, "workers");
  expect(!dep.spec.template.spec.initContainers, "workers: no init container (they retry by themselves)");
  scrape(dep, 9091, "workers");
  podBasics(dep, "workers");
  for (const [obj, cname, threadsKey] of [[ss, "coordinator", "threads"], [dep, "worker", "threads"]]) {
    const threads = Number(flag(obj, threadsKey));
    const cpu = String(container(obj, cname).resources.limits.cpu);
    const cores = cpu.endsWith("m") ? Number(cpu.slice(0, -1)) / 1000 : Number(cpu);
    expect(threads >= 1 && threads <= Math.max(1, cores),
           `${cname}: --threads (${threads}) must be >= 1 and at most the CPU limit (${cpu})`);
  }

  // The coordinator's flags; the workers' are tls_ca, tls_cert, tls_key, token_file.
  const coordFlags = ["tls_cert", "tls_key", "tls_ca", "worker_token_file", "user_token_file"];
  const tlsFlags = [...coordFlags, "token_file"];
  if (tls) {
    for (const p of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      expect(cc[p] && cc[p].tcpSocket && cc[p].tcpSocket.port === 7070 && !cc[p].grpc,
             `coordinator with TLS: ${p} must be tcpSocket on 7070 (kubelet gRPC probes cannot do TLS)`);
    }
    for (const f of coordFlags) expect(flag(ss, f), `coordinator: --${f} must be set`);
    expect(!flag(ss, "token_file"),
           "coordinator: role tokens (--worker_token_file, --user_token_file), not --token_file");
    for (const f of ["tls_ca", "tls_cert", "tls_key", "token_file"]) {
      expect(flag(dep, f), `workers: --${f} must be set`);
    }
    for (const [obj, label] of [[ss, "coordinator"], [dep, "workers"]]) {
      const vols = obj.spec.template.spec.volumes || [];
      const sv = vols.find((v) => v.secret);
      expect(sv && find("Secret", sv.secret.secretName), `${label}: must mount a Secret of the set`);
      const c = obj.spec.template.spec.containers[0];
      for (const f of tlsFlags) {
        const v = flag(obj, f);
        if (!v) continue;
        const mount = (c.volumeMounts || []).find((m) => sv && m.name === sv.name);
        expect(mount && v.startsWith(mount.mountPath + "/"),
               `${label}: --${f}=${v} must lie in the mounted Secret`);
        if (mount && sv && v.startsWith(mount.mountPath + "/")) {
          const key = v.slice(mount.mountPath.length + 1);
          const secret = find("Secret", sv.secret.secretName);
          expect(secret && secret.data && key in secret.data,
                 `${label}: Secret ${sv.secret.secretName} has no key ${key} for --${f}`);
        }
      }
    }
    const wsecret = (dep.spec.template.spec.volumes || []).find((v) => v.secret);
    const wdata = wsecret && find("Secret", wsecret.secret.secretName);
    const coordKey = findPrefix("Secret", "ist-coordinator-tls");
    expect(coordKey && wdata && wdata.data["tls.key"] !== coordKey.data["tls.key"],
           "workers must not get the coordinator's private key");
    expect(find("Secret", "ist-client"), "Secret ist-client (fixed name, for the submit Job) missing");
    // Roles: the workers send the coordinator's worker token, the client
    // Secret holds its user token, and the two differ.
    const client = find("Secret", "ist-client");
    if (coordKey && wdata && client) {
      expect(wdata.data.token === coordKey.data["worker-token"],
             "workers' token must be the coordinator's worker-token");
      expect(client.data.token === coordKey.data["user-token"],
             "ist-client's token must be the coordinator's user-token");
      expect(client.data.token !== wdata.data.token,
             "the workers' and the users' tokens must differ");
    }
  } else {
    grpcProbes(cc, 7070, "coordinator");
    for (const f of tlsFlags) {
      expect(!flag(ss, f) && !flag(dep, f), `--${f} set in a plaintext overlay`);
    }
    expect(!objs.some((o) => o.kind === "Secret"), "a plaintext overlay has no Secret");
  }
}

function submit(tls) {
  const job = find("Job", "ist-submit-fashion-mnist");
  expect(job, "Job ist-submit-fashion-mnist missing");
  if (!job) return;
  const c = job.spec.template.spec.containers[0];
  const script = (c.args || []).join("\n");
  expect(/\bsubmit --spec=\/etc\/ist\/job\.textpb --wait\b/.test(script),
         "Job: must run istctl ... submit --spec=/etc/ist/job.textpb --wait");
  expect(job.spec.backoffLimit === 0, "Job: backoffLimit 0 (a retry could submit twice)");
  expect(job.spec.template.spec.restartPolicy === "Never", "Job: restartPolicy Never");
  const vol = (job.spec.template.spec.volumes || []).find((v) => v.configMap);
  const cm = vol && find("ConfigMap", vol.configMap.name);
  const mount = vol && c.volumeMounts.find((m) => m.name === vol.name);
  expect(cm && cm.data && "job.textpb" in cm.data && mount && mount.mountPath === "/etc/ist",
         "Job: the spec ConfigMap must provide /etc/ist/job.textpb");
  const env = Object.fromEntries((c.env || []).map((e) => [e.name, e.value]));
  expect(env.IST_COORDINATOR === "ist-coordinator:7070", "Job: IST_COORDINATOR=ist-coordinator:7070");
  const sec = env.IST_SECURITY_FLAGS || "";
  if (tls) {
    for (const f of ["tls_ca", "tls_cert", "tls_key", "token_file"]) {
      expect(sec.includes(`--${f}=/var/run/secrets/ist/`), `Job (TLS): --${f} from the mounted Secret`);
    }
    const sv = (job.spec.template.spec.volumes || []).find((v) => v.secret);
    expect(sv && sv.secret.secretName === "ist-client", "Job (TLS): mounts Secret ist-client");
  } else {
    expect(sec.trim() === "", "Job (plaintext): no security flags");
  }
}

switch (target) {
  case "base":
    cluster(2, false);
    break;
  case "dev":
    cluster(2, false);
    expect(find("Namespace", "ist-dev"), "dev: Namespace ist-dev");
    break;
  case "prod":
    cluster(4, true);
    expect(find("Namespace", "ist"), "prod: Namespace ist");
    expect(objs.some((o) => o.kind === "NetworkPolicy"), "prod: a NetworkPolicy");
    break;
  case "submit":
    submit(false);
    break;
  case "submit-tls":
    submit(true);
    break;
  default:
    process.stderr.write(`assert_rendered.js: unknown target ${target}\n`);
    process.exit(2);
}
for (const p of problems) process.stdout.write(`FAIL  ${target}: ${p}\n`);
process.exit(problems.length === 0 ? 0 : 1);
