// Preloaded into the jsii runtime's Node.js processes by stacks/jsii_node.py (NODE_OPTIONS --require).
//
// 1. CDK validates every template during synth with a WebAssembly engine (@aws/cloudformation-validate).
// By default V8 compiles it with its baseline compiler (Liftoff) and then recompiles whatever runs
// hot with its optimizing one (TurboFan): in a synth, which lasts seconds, that recompilation costs
// more CPU (about 2 s, on a core a parallel job may need) than the faster code saves. Same engine,
// same rules, same findings: only V8's choice of compiler changes.
//
// V8 flags are not allowed in NODE_OPTIONS, hence this file; unknown flags are ignored here, so a
// Node release that renames them runs as before, only slower.
//
// 2. Node.js compiles each of the several hundred aws-cdk-lib and cdk-nag modules a synth loads
// (about half a second of the jsii runtime's CPU, while Python waits). With BLUEPRINT_JSII_CACHE
// set (stacks/jsii_node.py), Node's own compile cache (module.enableCompileCache) keeps that work
// under <cache>/node-compile-cache, checked against each module's source, so a module whose code
// changed is compiled afresh. The cache is keyed by a module's path, and the jsii kernel loads
// every package from a new temporary directory per run (`<tmp>/jsii-kernel-XXXXXX`, where it links
// them), which would never hit; so its directory is instead one of a few fixed ones,
// <cache>/kernels/<n>, each taken by one kernel at a time (created with mkdir, which fails when
// another kernel holds it; the kernel removes it when it exits, as it removes its temporary one).
// One left behind by a killed kernel is taken back after STALE_MS. With every slot busy, or
// any other directory asked for, mkdtemp runs as ever.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const v8 = require("node:v8");

v8.setFlagsFromString("--no-wasm-dynamic-tiering");
v8.setFlagsFromString("--no-wasm-tier-up");

const KERNEL_PREFIX = "jsii-kernel-";
const SLOTS = 4;
const STALE_MS = 60 * 60 * 1000; // a synth never holds its kernel this long

function claimSlot(kernels) {
  fs.mkdirSync(kernels, { recursive: true });
  for (let slot = 0; slot < SLOTS; slot++) {
    const dir = path.join(kernels, String(slot));
    try {
      fs.mkdirSync(dir);
      return dir;
    } catch (error) {
      if (error.code !== "EEXIST") return undefined;
    }
    try {
      if (Date.now() - fs.statSync(dir).mtimeMs < STALE_MS) continue;
      const aside = `${dir}.stale.${process.pid}`;
      fs.renameSync(dir, aside); // only one claimant of a stale slot gets it out of the way
      fs.rmSync(aside, { recursive: true, force: true });
      fs.mkdirSync(dir);
      return dir;
    } catch {
      // another process took it back first, or holds it: the next slot
    }
  }
  return undefined;
}

const cache = process.env.BLUEPRINT_JSII_CACHE;
const { enableCompileCache } = require("node:module");
if (cache && typeof enableCompileCache === "function") {
  enableCompileCache(path.join(cache, "node-compile-cache"));
  const mkdtempSync = fs.mkdtempSync;
  fs.mkdtempSync = function stableKernelDirectory(prefix, ...rest) {
    if (path.basename(String(prefix)) === KERNEL_PREFIX) {
      const dir = claimSlot(path.join(cache, "kernels"));
      if (dir) return dir;
    }
    return mkdtempSync.call(this, prefix, ...rest);
  };
}
