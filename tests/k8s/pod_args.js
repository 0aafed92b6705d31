#!/usr/bin/env node
// The command line a container of a rendered manifest would get, for running
// the real daemon with it outside Kubernetes (check_manifests.sh's smoke
// checks):
//   - $(VAR) in args expanded as the kubelet does: env values, envFrom
//     ConfigMaps of the set, fieldRef metadata.name (the workload's name);
//   - every Secret and ConfigMap volume the container mounts written under
//     ROOT (ROOT + mountPath + "/" + key, from the rendered data), and each
//     argument that names a file below such a mountPath pointed there.
// Prints the arguments one per line (the env vars named with --env=NAME as
// NAME=value lines instead of args, for a script's environment).
//
// usage: node pod_args.js FILE Kind/name --root=DIR [--env=NAME]...
"use strict";

const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");

const argv = process.argv.slice(2);
const file = argv[0];
const [kind, name] = (argv[1] || "").split("/");
let root = null;
const envWanted = [];
for (const a of argv.slice(2)) {
  if (a.startsWith("--root=")) root = a.slice(7);
  else if (a.startsWith("--env=")) envWanted.push(a.slice(6));
}
if (!file || !kind || !name || !root) {
  process.stderr.write("usage: node pod_args.js FILE Kind/name --root=DIR [--env=NAME]...\n");
  process.exit(2);
}
const objs = yaml.loadAll(fs.readFileSync(file, "utf8")).filter(Boolean);
const find = (k, n) => objs.find((o) => o.kind === k && o.metadata && o.metadata.name === n);
const obj = find(kind, name);
if (!obj) {
  process.stderr.write(`pod_args.js: no ${kind}/${name} in ${file}\n`);
  process.exit(1);
}
const pod = obj.spec.template.spec;
const c = pod.containers[0];

const vars = {};
for (const ef of c.envFrom || []) {
  const cm = ef.configMapRef && find("ConfigMap", ef.configMapRef.name);
  if (cm) Object.assign(vars, cm.data || {});
}
for (const e of c.env || []) {
  if (e.value !== undefined) vars[e.name] = e.value;
  else if (e.valueFrom && e.valueFrom.fieldRef && e.valueFrom.fieldRef.fieldPath === "metadata.name") {
    vars[e.name] = name;
  }
}
const expand = (s) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) => (v in vars ? vars[v] : m));

const mounts = [];
for (const m of c.volumeMounts || []) {
  const vol = (pod.volumes || []).find((v) => v.name === m.name);
  if (!vol) continue;
  let data = null;
  if (vol.secret) {
    const s = find("Secret", vol.secret.secretName);
    if (!s) throw new Error(`Secret ${vol.secret.secretName} not in ${file}`);
    data = Object.fromEntries(Object.entries(s.data || {}).map(
      ([k, v]) => [k, Buffer.from(v.replace(/[\r\n]/g, ""), "base64")]));
    Object.assign(data, s.stringData || {});
  } else if (vol.configMap) {
    const cm = find("ConfigMap", vol.configMap.name);
    if (!cm) throw new Error(`ConfigMap ${vol.configMap.name} not in ${file}`);
    data = Object.assign({}, cm.data || {});
  }
  if (!data) continue;
  const dir = path.join(root, m.mountPath);
  fs.mkdirSync(dir, { recursive: true });
  for (const [k, v] of Object.entries(data)) fs.writeFileSync(path.join(dir, k), v, { mode: 0o600 });
  mounts.push(m.mountPath);
}
const relocate = (s) => {
  for (const mp of mounts) s = s.split(mp + "/").join(path.join(root, mp) + "/");
  return s;
};

if (envWanted.length > 0) {
  for (const n of envWanted) process.stdout.write(`${n}=${relocate(expand(vars[n] ?? ""))}\n`);
} else {
  for (const a of c.args || []) process.stdout.write(relocate(expand(a)) + "\n");
}
