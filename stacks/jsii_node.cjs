// Preloaded into the jsii runtime's Node.js processes by stacks/jsii_node.py (NODE_OPTIONS --require).
//
// CDK validates every template during synth with a WebAssembly engine (@aws/cloudformation-validate).
// By default V8 compiles it with its baseline compiler (Liftoff) and then recompiles whatever runs
// hot with its optimizing one (TurboFan): in a synth, which lasts seconds, that recompilation costs
// more CPU (about 2 s, on a core a parallel job may need) than the faster code saves. Same engine,
// same rules, same findings: only V8's choice of compiler changes.
//
// V8 flags are not allowed in NODE_OPTIONS, hence this file; unknown flags are ignored here, so a
// Node release that renames them runs as before, only slower.
"use strict";
const v8 = require("node:v8");
v8.setFlagsFromString("--no-wasm-dynamic-tiering");
v8.setFlagsFromString("--no-wasm-tier-up");
