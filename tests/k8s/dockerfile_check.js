#!/usr/bin/env node
// Structural checks of a multi-stage Dockerfile, offline (no Docker engine):
//   - every base image that is not an earlier stage has an explicit tag or
//     digest, and the tag is not `latest`;
//   - no ADD of a URL (use curl in a RUN with a checksum, or COPY);
//   - COPY --from names an earlier stage;
//   - each runtime target (--targets) exists and ends up, counting what it
//     inherits from the stages it is built FROM, with a numeric non-root
//     USER (equal to --uid when given, so Kubernetes' runAsNonRoot can check
//     it), an ENTRYPOINT, and a HEALTHCHECK (or HEALTHCHECK NONE where
//     --no-healthcheck allows it).
//
// usage: node dockerfile_check.js --targets=a,b [--uid=N] [--no-healthcheck=c] FILE
"use strict";

const fs = require("fs");

function parseArgs(argv) {
  const opts = { targets: [], uid: null, noHealth: new Set(), file: null };
  for (const a of argv) {
    if (a.startsWith("--targets=")) opts.targets = a.slice(10).split(",").filter(Boolean);
    else if (a.startsWith("--uid=")) opts.uid = a.slice(6);
    else if (a.startsWith("--no-healthcheck=")) {
      for (const t of a.slice(17).split(",")) opts.noHealth.add(t);
    } else opts.file = a;
  }
  if (!opts.file) {
    process.stderr.write("usage: node dockerfile_check.js --targets=a,b [--uid=N] [--no-healthcheck=c] FILE\n");
    process.exit(2);
  }
  return opts;
}

// Logical instructions: comments dropped, continuation lines joined.
function instructions(text) {
  const out = [];
  let cur = null;
  let startLine = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (cur === null && /^\s*(#.*)?$/.test(line)) return;
    if (cur !== null && /^\s*#/.test(line)) return;  // comment inside a continuation
    if (cur === null) {
      cur = "";
      startLine = i + 1;
    }
    if (/\\\s*$/.test(line)) {
      cur += line.replace(/\\\s*$/, " ");
    } else {
      cur += line;
      const m = cur.trim().match(/^(\S+)\s*(.*)$/s);
      out.push({ line: startLine, op: m[1].toUpperCase(), args: m[2].trim() });
      cur = null;
    }
  });
  if (cur !== null) out.push({ line: startLine, op: "ERROR", args: "file ends inside a continuation" });
  return out;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const text = fs.readFileSync(opts.file, "utf8");
  const errors = [];
  const err = (line, msg) => errors.push(`${opts.file}:${line}: ${msg}`);
  const stages = new Map();  // name -> config
  let stage = null;
  let stageIndex = 0;
  // ARGs before the first FROM: their defaults expand in FROM lines
  // (`FROM ${BINARIES} AS binaries` names the stage BINARIES defaults to).
  const globalArgs = new Map();
  const expandArgs = (s) => s.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, a, b) => (globalArgs.has(a || b) ? globalArgs.get(a || b) : m));
  for (const ins of instructions(text)) {
    switch (ins.op) {
      case "ARG": {
        if (stage) break;
        const m = ins.args.match(/^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/);
        if (m) globalArgs.set(m[1], (m[2] || "").replace(/^"(.*)"$/, "$1"));
        break;
      }
      case "ERROR":
        err(ins.line, ins.args);
        break;
      case "FROM": {
        const words = expandArgs(ins.args).split(/\s+/).filter((w) => !w.startsWith("--platform"));
        const image = words[0];
        const name = words.length >= 3 && words[1].toUpperCase() === "AS" ? words[2] : String(stageIndex);
        stageIndex++;
        let config;
        if (stages.has(image)) {
          config = Object.assign({}, stages.get(image));
        } else {
          config = { user: null, entrypoint: null, healthcheck: null };
          if (image !== "scratch") {
            const at = image.indexOf("@");
            const lastSlash = image.lastIndexOf("/");
            const colon = image.indexOf(":", lastSlash + 1);
            if (at < 0 && colon < 0) err(ins.line, `base image ${image} has no tag`);
            else if (at < 0 && image.slice(colon + 1) === "latest") {
              err(ins.line, `base image ${image} uses the tag latest`);
            }
          }
        }
        stage = { name, config };
        stages.set(name, config);
        break;
      }
      case "ADD":
        if (/(^|\s)(https?|git|ftp):\/\//i.test(ins.args) || /(^|\s)git@/.test(ins.args)) {
          err(ins.line, "ADD of a URL (download in a RUN with a checksum, or COPY a file)");
        }
        break;
      case "COPY": {
        const m = ins.args.match(/--from=(\S+)/);
        if (m && !stages.has(m[1]) && !/[:/@]/.test(m[1])) {
          err(ins.line, `COPY --from=${m[1]}: no earlier stage of that name`);
        }
        break;
      }
      case "USER":
        if (stage) stage.config.user = { value: ins.args, line: ins.line };
        break;
      case "ENTRYPOINT":
        if (stage) stage.config.entrypoint = { value: ins.args, line: ins.line };
        break;
      case "HEALTHCHECK":
        if (stage) stage.config.healthcheck = { value: ins.args, line: ins.line };
        break;
      default:
        break;
    }
  }
  if (stages.size === 0) err(1, "no FROM");
  for (const t of opts.targets) {
    const c = stages.get(t);
    if (!c) {
      err(1, `target stage ${t} is missing`);
      continue;
    }
    if (!c.user) {
      err(1, `target ${t}: no USER (it would run as root)`);
    } else {
      const uid = c.user.value.split(":")[0];
      if (!/^\d+$/.test(uid)) {
        err(c.user.line, `target ${t}: USER ${c.user.value} is not numeric (runAsNonRoot cannot verify a name)`);
      } else if (uid === "0") {
        err(c.user.line, `target ${t}: USER is root`);
      } else if (opts.uid !== null && uid !== opts.uid) {
        err(c.user.line, `target ${t}: USER ${uid}, expected ${opts.uid}`);
      }
    }
    if (!c.entrypoint) err(1, `target ${t}: no ENTRYPOINT`);
    if (!c.healthcheck) {
      err(1, `target ${t}: no HEALTHCHECK`);
    } else if (/^NONE$/i.test(c.healthcheck.value) && !opts.noHealth.has(t)) {
      err(c.healthcheck.line, `target ${t}: HEALTHCHECK NONE`);
    } else if (!/^NONE$/i.test(c.healthcheck.value) && !/\bCMD\b/.test(c.healthcheck.value)) {
      err(c.healthcheck.line, `target ${t}: HEALTHCHECK without CMD`);
    }
  }
  for (const e of errors) process.stdout.write(`FAIL  ${e}\n`);
  process.stdout.write(`dockerfile_check: ${stages.size} stages, targets ${opts.targets.join(",") || "-"}: ` +
                       `${errors.length} problems\n`);
  process.exit(errors.length === 0 ? 0 : 1);
}

main();
