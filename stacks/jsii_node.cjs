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
// set (stacks/jsii_node.py), Node's own compile cache (module.enableCompileCache, Node 22.1 and
// later; on an older Node all of this is off) keeps that work under <cache>/node-compile-cache,
// checked against each module's source, so a module whose code changed is compiled afresh. The
// cache is keyed by a module's path, and the jsii kernel loads every package from a new temporary
// directory per run (`<tmp>/jsii-kernel-XXXXXX`, where it links them), which would never hit; so
// its directory is instead one of a few fixed ones, <cache>/kernels/<n>:
//   - taken with mkdir, which fails when another kernel holds it, and marked with the taker's
//     process id (OWNER); the kernel removes it when it exits, as it removes its temporary one;
//   - one whose owner is no longer running (a kernel stopped by a signal skips its exit handlers)
//     is moved aside and taken; if the one moved aside turns out to have a new, live owner (a race
//     between two synths starting at once), it is moved back and the next slot is tried;
//   - with every slot held, or anything failing, or any other directory asked for, mkdtemp runs as
//     ever. Nothing here can fail a synth: a kernel without a slot only compiles its modules again.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const v8 = require("node:v8");

v8.setFlagsFromString("--no-wasm-dynamic-tiering");
v8.setFlagsFromString("--no-wasm-tier-up");

const KERNEL_PREFIX = "jsii-kernel-";
const SLOTS = 4;
const OWNER = ".owner";

function owner(dir) {
  let pid;
  try {
    pid = Number(fs.readFileSync(path.join(dir, OWNER), "utf8"));
  } catch {
    return undefined; // just taken (not marked yet) or gone: not ours to take
  }
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined; // a mark half written: held too
}

function running(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM"; // another user's process: running
  }
}

function take(dir) {
  fs.mkdirSync(dir);
  try {
    fs.writeFileSync(path.join(dir, OWNER), String(process.pid));
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true }); // unmarked, it could never be taken back
    throw error;
  }
  return dir;
}

function claimSlot(kernels) {
  fs.mkdirSync(kernels, { recursive: true });
  for (let slot = 0; slot < SLOTS; slot++) {
    const dir = path.join(kernels, String(slot));
    try {
      return take(dir);
    } catch (error) {
      if (error.code !== "EEXIST") throw error;
    }
    const stale = owner(dir);
    if (stale === undefined || running(stale)) continue;
    const aside = `${dir}.stale.${process.pid}`;
    try {
      fs.renameSync(dir, aside); // one claimant moves it; another finds it gone
    } catch {
      continue;
    }
    if (owner(aside) !== stale) {
      fs.renameSync(aside, dir); // a new owner took it meanwhile: theirs again
      continue;
    }
    fs.rmSync(aside, { recursive: true, force: true });
    try {
      return take(dir);
    } catch {
      // taken by another after the move: the next slot
    }
  }
  return undefined;
}

const cache = process.env.BLUEPRINT_JSII_CACHE;
const { enableCompileCache } = require("node:module");
if (cache && typeof enableCompileCache === "function") {
  enableCompileCache(path.join(cache, "node-compile-cache")); // reports a failure, never throws
  const mkdtempSync = fs.mkdtempSync;
  fs.mkdtempSync = function stableKernelDirectory(prefix, ...rest) {
    if (path.basename(String(prefix)) === KERNEL_PREFIX) {
      try {
        const dir = claimSlot(path.join(cache, "kernels"));
        if (dir) return dir;
      } catch {
        // no slot (a cache that cannot be written): a temporary directory, as ever
      }
    }
    return mkdtempSync.call(this, prefix, ...rest);
  };
}
