#!/usr/bin/env node
// Offline validation of rendered Kubernetes manifests (the output of
// `kubectl kustomize`), with no API server:
//
//  1. schema   kubernetes-models' JSON-schema validators for the object's
//              apiVersion/kind (types, formats, enums, required fields).
//              An unknown apiVersion/kind is an error.
//  2. fields   TypeScript's excess-property check against kubernetes-models'
//              own type declarations: every object is compiled as
//              `const m: IDeployment = {...}`, so an unknown (e.g.
//              misspelled) field at any depth, a wrong type, or a missing
//              required field is an error. kubernetes-models' validators
//              alone accept unknown fields (they are generated from the
//              OpenAPI schema, which does not forbid them), hence this pass.
//  3. rules    what the API server or the kubelet would reject or silently
//              get wrong that the schema does not say: containers without an
//              image, names that are not DNS names, selectors that do not
//              match their template, probes without exactly one handler or
//              on an undeclared named port, mounts of undeclared volumes,
//              ConfigMaps/Secrets/Services/PVCs referenced but not in the
//              set, $(VAR) references in args that no env var defines,
//              images without a tag or with `latest`.
//
// usage: node validate.js [--external=Kind/name]... FILE|- ...
//   --external=Secret/ist-client  a reference to an object created elsewhere
// Prints one line per object (ok/FAIL) and exits 1 if any object failed.
"use strict";

const fs = require("fs");
const path = require("path");
const yaml = require("js-yaml");
const ts = require("typescript");

// ---------------------------------------------------------------- input

function parseArgs(argv) {
  const external = new Set();
  const files = [];
  for (const a of argv) {
    if (a.startsWith("--external=")) external.add(a.slice("--external=".length));
    else if (a === "-h" || a === "--help") {
      process.stdout.write(
        "usage: node validate.js [--external=Kind/name]... FILE|- ...\n");
      process.exit(0);
    } else files.push(a);
  }
  if (files.length === 0) {
    process.stderr.write("validate.js: no input files (use - for stdin)\n");
    process.exit(2);
  }
  return { external, files };
}

function loadDocs(files) {
  const docs = [];
  for (const f of files) {
    const text = f === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(f, "utf8");
    let parsed;
    try {
      parsed = yaml.loadAll(text);
    } catch (e) {
      docs.push({ file: f, parseError: e.message });
      continue;
    }
    for (const d of parsed) {
      if (d === null || d === undefined) continue;
      docs.push({ file: f, obj: d });
    }
  }
  return docs;
}

function idOf(obj) {
  if (!obj || typeof obj !== "object") return "<not an object>";
  const name = obj.metadata && obj.metadata.name ? obj.metadata.name : "<no name>";
  return `${obj.kind || "<no kind>"}/${name}`;
}

// ---------------------------------------------------------------- 1. schema

// kubernetes-models lays its modules out as <group>/<version>/<Kind>, and
// the core group as v1/<Kind>.
function modelModule(obj) {
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") return null;
  if (!/^[A-Za-z0-9.\-]+(\/[A-Za-z0-9]+)?$/.test(obj.apiVersion)) return null;
  if (!/^[A-Z][A-Za-z0-9]*$/.test(obj.kind)) return null;
  return `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
}

function schemaErrors(obj) {
  const mod = modelModule(obj);
  if (mod === null) return [`apiVersion/kind missing or malformed`];
  let Model;
  try {
    Model = require(mod)[obj.kind];
  } catch (e) {
    return [`unknown apiVersion/kind ${obj.apiVersion} ${obj.kind} (no ${mod})`];
  }
  if (typeof Model !== "function") return [`unknown kind ${obj.kind} in ${obj.apiVersion}`];
  // Secret data and ConfigMap binaryData are base64; kustomize wraps long
  // values over several lines, and the API server's base64 decoder (Go's
  // encoding/base64) ignores \r and \n. Do the same before the "byte" check.
  let copy = obj;
  for (const field of ["data", "binaryData"]) {
    const base64 = (obj.kind === "Secret" && field === "data") ||
                   (obj.kind === "ConfigMap" && field === "binaryData");
    if (!base64 || !obj[field] || typeof obj[field] !== "object") continue;
    copy = Object.assign({}, copy, { [field]: {} });
    for (const [k, v] of Object.entries(obj[field])) {
      copy[field][k] = typeof v === "string" ? v.replace(/[\r\n]/g, "") : v;
    }
  }
  try {
    new Model(copy).validate();
  } catch (e) {
    return String(e.message)
      .split(/,\s*(?=data)/)
      .map((m) => `schema: ${m.replace(/^data\/?/, "/")}`);
  }
  return [];
}

// ---------------------------------------------------------------- 2. fields

// Pretty-prints `value` as a TypeScript object literal and records the JSON
// path of every line, so that a compiler diagnostic can name the field.
function toLiteral(value) {
  const lines = [];
  const paths = [];
  function emit(text, p) {
    lines.push(text);
    paths.push(p);
  }
  function walk(v, p, indent, prefix, suffix) {
    const pad = "  ".repeat(indent);
    if (Array.isArray(v)) {
      if (v.length === 0) return emit(`${pad}${prefix}[]${suffix}`, p);
      emit(`${pad}${prefix}[`, p);
      v.forEach((x, i) => walk(x, `${p}/${i}`, indent + 1, "", i < v.length - 1 ? "," : ""));
      emit(`${pad}]${suffix}`, p);
    } else if (v !== null && typeof v === "object") {
      const keys = Object.keys(v);
      if (keys.length === 0) return emit(`${pad}${prefix}{}${suffix}`, p);
      emit(`${pad}${prefix}{`, p);
      keys.forEach((k, i) =>
        walk(v[k], `${p}/${k}`, indent + 1, `${JSON.stringify(k)}: `,
             i < keys.length - 1 ? "," : ""));
      emit(`${pad}}${suffix}`, p);
    } else {
      emit(`${pad}${prefix}${JSON.stringify(v)}${suffix}`, p);
    }
  }
  walk(value, "", 1, "", ";");
  return { lines, paths };
}

function fieldErrors(items) {
  // items: [{index, obj}] whose schema pass found the model module.
  const dir = __dirname;
  const files = new Map();
  const meta = new Map();
  for (const { index, obj } of items) {
    const mod = modelModule(obj);
    const name = path.join(dir, `__manifest_${index}.ts`);
    const lit = toLiteral(obj);
    const header = [
      `import type { I${obj.kind} } from ${JSON.stringify(mod)};`,
      `export const m: I${obj.kind} =`,
    ];
    files.set(name, header.concat(lit.lines).join("\n") + "\n");
    meta.set(name, { index, header: header.length, paths: lit.paths, lines: lit.lines });
  }
  const errors = new Map();
  if (files.size === 0) return errors;
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2020,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    lib: ["lib.es2020.d.ts"],
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const origFileExists = host.fileExists.bind(host);
  const origReadFile = host.readFile.bind(host);
  const origGetSourceFile = host.getSourceFile.bind(host);
  host.fileExists = (f) => files.has(path.resolve(f)) || origFileExists(f);
  host.readFile = (f) => files.get(path.resolve(f)) ?? origReadFile(f);
  host.getSourceFile = (f, lang, onError, create) => {
    const text = files.get(path.resolve(f));
    if (text !== undefined) return ts.createSourceFile(f, text, lang, true);
    return origGetSourceFile(f, lang, onError, create);
  };
  const program = ts.createProgram([...files.keys()], options, host);
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, "; ");
    const fname = d.file ? path.resolve(d.file.fileName) : null;
    const m = fname ? meta.get(fname) : null;
    if (!m) {
      // A problem outside the generated files (the toolchain itself).
      const key = -1;
      if (!errors.has(key)) errors.set(key, []);
      errors.get(key).push(`typescript: ${msg}`);
      continue;
    }
    const { line } = d.file.getLineAndCharacterOfPosition(d.start || 0);
    const k = line - m.header;
    let where = "";
    if (k >= 0 && k < m.paths.length) where = (m.paths[k] || "/") + ": ";
    if (!errors.has(m.index)) errors.set(m.index, []);
    errors.get(m.index).push(`fields: ${where}${msg.replace(/'"([^"]*)"'/g, "'$1'")}`);
  }
  return errors;
}

// ---------------------------------------------------------------- 3. rules

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Kinds whose names must be DNS labels (63 chars) rather than subdomains.
const LABEL_NAMED = new Set(["Service", "Namespace"]);

function podTemplateOf(obj) {
  const s = obj.spec || {};
  switch (obj.kind) {
    case "Pod":
      return { meta: obj.metadata || {}, spec: s, path: "/spec" };
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
    case "ReplicaSet":
    case "Job":
      return s.template ? { meta: s.template.metadata || {}, spec: s.template.spec || {},
                            path: "/spec/template/spec" } : null;
    case "CronJob": {
      const t = s.jobTemplate && s.jobTemplate.spec && s.jobTemplate.spec.template;
      return t ? { meta: t.metadata || {}, spec: t.spec || {},
                   path: "/spec/jobTemplate/spec/template/spec" } : null;
    }
    default:
      return null;
  }
}

function imageProblem(image) {
  if (typeof image !== "string" || image.trim() === "") return "has no image";
  if (image.includes("@sha256:")) return null;
  const lastSlash = image.lastIndexOf("/");
  const colon = image.indexOf(":", lastSlash + 1);
  if (colon < 0) return `image ${image} has no tag (pin one; never rely on latest)`;
  if (image.slice(colon + 1) === "latest") return `image ${image} uses the tag latest`;
  return null;
}

function ruleErrors(doc, all, external) {
  const obj = doc.obj;
  const errs = [];
  const md = obj.metadata || {};
  const ns = md.namespace || "";
  const has = (kind, name) =>
    external.has(`${kind}/${name}`) ||
    all.some((o) => o.kind === kind && o.metadata && o.metadata.name === name &&
                    (o.metadata.namespace || "") === ns);

  if (typeof md.name !== "string" || md.name === "") {
    errs.push("/metadata/name: required");
  } else {
    const re = LABEL_NAMED.has(obj.kind) ? DNS1123_LABEL : DNS1123_SUBDOMAIN;
    const max = LABEL_NAMED.has(obj.kind) ? 63 : 253;
    if (!re.test(md.name) || md.name.length > max) {
      errs.push(`/metadata/name: '${md.name}' is not a valid DNS name for a ${obj.kind}`);
    }
  }

  const tpl = podTemplateOf(obj);
  if (tpl) {
    const p = tpl.path;
    const spec = tpl.spec;
    // Selector must match the template's labels (apps/v1 requires it).
    if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"].includes(obj.kind)) {
      const sel = (obj.spec.selector && obj.spec.selector.matchLabels) || {};
      const labels = tpl.meta.labels || {};
      if (Object.keys(sel).length === 0) errs.push("/spec/selector/matchLabels: empty");
      for (const [k, v] of Object.entries(sel)) {
        if (labels[k] !== v) {
          errs.push(`/spec/selector: ${k}=${v} does not match the template's labels`);
        }
      }
    }
    if (obj.kind === "StatefulSet" && obj.spec.serviceName && !has("Service", obj.spec.serviceName)) {
      errs.push(`/spec/serviceName: no Service ${obj.spec.serviceName} in the set`);
    }
    const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
    const claimTemplates = new Set(
      ((obj.kind === "StatefulSet" && obj.spec.volumeClaimTemplates) || [])
        .map((c) => c.metadata && c.metadata.name));
    for (const [vname, v] of volumes) {
      if (v.configMap && !has("ConfigMap", v.configMap.name) && !v.configMap.optional) {
        errs.push(`${p}/volumes/${vname}: no ConfigMap ${v.configMap.name} in the set`);
      }
      if (v.secret && !has("Secret", v.secret.secretName) && !v.secret.optional) {
        errs.push(`${p}/volumes/${vname}: no Secret ${v.secret.secretName} in the set`);
      }
      if (v.persistentVolumeClaim && !has("PersistentVolumeClaim", v.persistentVolumeClaim.claimName)) {
        errs.push(`${p}/volumes/${vname}: no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName} in the set`);
      }
      if (claimTemplates.has(vname)) {
        errs.push(`${p}/volumes/${vname}: also a volumeClaimTemplate`);
      }
    }
    const groups = [["containers", spec.containers || []], ["initContainers", spec.initContainers || []]];
    if ((spec.containers || []).length === 0) errs.push(`${p}/containers: none`);
    const seen = new Set();
    for (const [group, list] of groups) {
      list.forEach((c, i) => {
        const cp = `${p}/${group}/${i}`;
        if (typeof c.name === "string") {
          if (!DNS1123_LABEL.test(c.name)) errs.push(`${cp}/name: '${c.name}' is not a DNS label`);
          if (seen.has(c.name)) errs.push(`${cp}/name: duplicate container name ${c.name}`);
          seen.add(c.name);
        }
        const imgErr = imageProblem(c.image);
        if (imgErr) errs.push(`${cp}/image: container ${c.name || i} ${imgErr}`);
        const portNames = new Set();
        for (const port of c.ports || []) {
          if (port.name !== undefined) {
            if (port.name.length > 15 || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(port.name)) {
              errs.push(`${cp}/ports: name '${port.name}' must be an IANA_SVC_NAME (<= 15 chars)`);
            }
            portNames.add(port.name);
          }
        }
        for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
          const pr = c[kind];
          if (!pr) continue;
          const handlers = ["exec", "httpGet", "tcpSocket", "grpc"].filter((h) => pr[h] !== undefined);
          if (handlers.length !== 1) {
            errs.push(`${cp}/${kind}: needs exactly one of exec, httpGet, tcpSocket, grpc; has ${handlers.join(", ") || "none"}`);
          }
          for (const h of ["httpGet", "tcpSocket"]) {
            if (pr[h] && typeof pr[h].port === "string" && !portNames.has(pr[h].port)) {
              errs.push(`${cp}/${kind}/${h}/port: no container port named ${pr[h].port}`);
            }
          }
        }
        const mounts = new Set();
        for (const m of c.volumeMounts || []) {
          if (!volumes.has(m.name) && !claimTemplates.has(m.name)) {
            errs.push(`${cp}/volumeMounts: volume ${m.name} is not declared`);
          }
          if (mounts.has(m.mountPath)) errs.push(`${cp}/volumeMounts: ${m.mountPath} mounted twice`);
          mounts.add(m.mountPath);
        }
        // Variables that $(VAR) in command/args can use.
        const vars = new Set();
        for (const e of c.env || []) {
          vars.add(e.name);
          const ref = e.valueFrom || {};
          if (ref.configMapKeyRef && !ref.configMapKeyRef.optional && !has("ConfigMap", ref.configMapKeyRef.name)) {
            errs.push(`${cp}/env/${e.name}: no ConfigMap ${ref.configMapKeyRef.name} in the set`);
          }
          if (ref.secretKeyRef && !ref.secretKeyRef.optional && !has("Secret", ref.secretKeyRef.name)) {
            errs.push(`${cp}/env/${e.name}: no Secret ${ref.secretKeyRef.name} in the set`);
          }
        }
        for (const ef of c.envFrom || []) {
          const kind = ef.configMapRef ? "ConfigMap" : ef.secretRef ? "Secret" : null;
          const ref = ef.configMapRef || ef.secretRef;
          if (!kind) continue;
          const target = all.find((o) => o.kind === kind && o.metadata && o.metadata.name === ref.name);
          if (!target) {
            if (!ref.optional && !external.has(`${kind}/${ref.name}`)) {
              errs.push(`${cp}/envFrom: no ${kind} ${ref.name} in the set`);
            }
            continue;
          }
          for (const k of Object.keys(Object.assign({}, target.data, target.stringData))) {
            vars.add((ef.prefix || "") + k);
          }
        }
        for (const field of ["command", "args"]) {
          for (const arg of c[field] || []) {
            if (typeof arg !== "string") continue;
            // $$ escapes; $(NAME) with a C identifier is expanded by the kubelet
            // and left verbatim (a broken flag) when NAME is not defined.
            const clean = arg.replace(/\$\$/g, "");
            for (const m of clean.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) {
              if (!vars.has(m[1])) {
                errs.push(`${cp}/${field}: $(${m[1]}) is not defined by env or envFrom`);
              }
            }
          }
        }
      });
    }
  }

  if (obj.kind === "Service") {
    const sel = (obj.spec && obj.spec.selector) || {};
    if (Object.keys(sel).length > 0) {
      const pods = all.map(podTemplateOf).filter(Boolean).filter((t) => {
        const labels = t.meta.labels || {};
        return Object.entries(sel).every(([k, v]) => labels[k] === v);
      });
      if (pods.length === 0) {
        errs.push(`/spec/selector: selects no pod template in the set`);
      }
      for (const port of (obj.spec && obj.spec.ports) || []) {
        if (typeof port.targetPort !== "string") continue;
        for (const t of pods) {
          const named = (t.spec.containers || []).some((c) =>
            (c.ports || []).some((cp) => cp.name === port.targetPort));
          if (!named) {
            errs.push(`/spec/ports/${port.name}: targetPort ${port.targetPort} is not a container port of the selected pods`);
            break;
          }
        }
      }
    }
  }
  return errs.map((e) => `rules: ${e}`);
}

// ---------------------------------------------------------------- main

function main() {
  const { external, files } = parseArgs(process.argv.slice(2));
  const docs = loadDocs(files);
  const all = docs.filter((d) => d.obj && typeof d.obj === "object").map((d) => d.obj);
  const results = docs.map(() => []);
  const typed = [];
  docs.forEach((d, i) => {
    if (d.parseError) {
      results[i].push(`yaml: ${d.parseError}`);
      return;
    }
    if (typeof d.obj !== "object" || Array.isArray(d.obj)) {
      results[i].push("yaml: a document is not a mapping");
      return;
    }
    const s = schemaErrors(d.obj);
    results[i].push(...s);
    if (!s.some((e) => e.startsWith("unknown") || e.startsWith("apiVersion"))) {
      typed.push({ index: i, obj: d.obj });
    }
    results[i].push(...ruleErrors(d, all, external));
  });
  const fields = fieldErrors(typed);
  for (const [i, errs] of fields) {
    if (i >= 0) results[i].push(...errs);
  }
  let failed = 0;
  if (fields.has(-1)) {
    for (const e of fields.get(-1)) process.stdout.write(`FAIL  (toolchain) ${e}\n`);
    failed++;
  }
  docs.forEach((d, i) => {
    const id = d.obj ? idOf(d.obj) : "<unparsed>";
    if (results[i].length === 0) {
      process.stdout.write(`ok    ${d.file}: ${id}\n`);
    } else {
      failed++;
      for (const e of results[i]) process.stdout.write(`FAIL  ${d.file}: ${id}: ${e}\n`);
    }
  });
  if (docs.length === 0) {
    process.stdout.write(`FAIL  no Kubernetes objects in ${files.join(" ")}\n`);
    failed++;
  }
  process.stdout.write(`validate: ${docs.length} objects, ${failed} with errors\n`);
  process.exit(failed === 0 ? 0 : 1);
}

main();
