// CDK's CloudFormation template validator in a Node.js process of its own (stacks/template_validation.py
// starts it and says why). Arguments: the directory holding aws-cdk-lib's package (the version the app's
// Python bindings carry) and, optionally, a directory for the result cache (below). The validator is
// built at once, while the app builds its constructs in the jsii runtime's process; then each line on
// stdin is one request, answered by one line on stdout:
//   {"describe": true}                      -> {"version": ..., "ruleIds": [...]}
//   {"validate": [{stackConstructPath, templatePath, accountId?, region?}, ...]}
//                                           -> {"report": <CDK's PolicyValidationPluginReport>}
// and any failure -> {"error": "<message>"}. Nothing else is written to stdout.
//
// The result cache: CDK's plugin validates each template on its own and merges the findings (same
// rule, severity and description: one violation listing every resource, in template order). So each
// template is validated on its own here, and its findings are kept in one file per stack, under a key
// that covers everything the result depends on: the template's bytes, the stack's request (path,
// template path, account, region), aws-cdk-lib's package (its rules), the engine's version and this
// file's own code. A
// template whose key matches is not validated again; the findings are merged exactly as CDK merges
// them, so the report is the one CDK's plugin returns over all the templates. A cache file that is
// missing, unreadable or for another key is a miss; a cache that cannot be written is no cache.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const readline = require("node:readline");

const library = process.argv[2];
const cacheDir = process.argv[3];
const WORKER = crypto.createHash("sha256").update(fs.readFileSync(__filename)).digest("hex"); // this code, in every key
let plugin;
let failure;
try {
  const { CloudFormationValidatePlugin } = require(
    path.join(library, "core", "lib", "validation", "cloudformation-validate-plugin.js"),
  );
  plugin = new CloudFormationValidatePlugin(); // the default rules, nothing added: CDK's own instance
} catch (error) {
  failure = `cannot build CDK's template validator from ${library}: ${error && error.message}`;
}

function answer(request) {
  if (failure) return { error: failure };
  if (request.describe) return { version: plugin.version, ruleIds: plugin.ruleIds };
  if (Array.isArray(request.validate)) return validate(request.validate);
  return { error: "unknown request" };
}

function sha256(...parts) {
  const hash = crypto.createHash("sha256");
  for (const part of parts) hash.update(part).update("\0");
  return hash.digest("hex");
}

// The findings for one stack's template: from the cache when its key matches, else from the engine.
function findings(stack) {
  const request = JSON.stringify([stack.stackConstructPath, stack.templatePath, stack.accountId ?? null, stack.region ?? null]);
  const key = sha256(library, plugin.version, WORKER, request, fs.readFileSync(stack.templatePath));
  const file = path.join(cacheDir, `${sha256(stack.stackConstructPath)}.json`);
  try {
    const cached = JSON.parse(fs.readFileSync(file, "utf8"));
    if (cached.key === key && Array.isArray(cached.violations)) return cached.violations;
  } catch {
    // a miss
  }
  const { violations } = plugin.validate({ stackTemplates: [stack], templatePaths: [stack.templatePath] });
  try {
    fs.mkdirSync(cacheDir, { recursive: true });
    const staging = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(staging, JSON.stringify({ key, violations }));
    fs.renameSync(staging, file); // whole or not at all, whatever another synth writes beside it
  } catch {
    // no cache: the findings stand
  }
  return violations;
}

// CDK's plugin over every template; with a cache, one template at a time (see the top of this file).
function validate(stackTemplates) {
  if (!cacheDir) {
    const templatePaths = stackTemplates.map((s) => s.templatePath);
    return { report: plugin.validate({ stackTemplates, templatePaths }) };
  }
  const violations = [];
  for (const stack of stackTemplates) {
    for (const violation of findings(stack)) {
      const same = violations.find(
        (v) => v.ruleName === violation.ruleName && v.severity === violation.severity && v.description === violation.description,
      );
      if (same) same.violatingResources.push(...violation.violatingResources);
      else violations.push({ ...violation, violatingResources: [...violation.violatingResources] });
    }
  }
  const success = violations.every((v) => v.severity !== "error" && v.severity !== "fatal");
  return { report: { success, violations } };
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let reply;
  try {
    reply = answer(JSON.parse(line));
  } catch (error) {
    reply = { error: String((error && error.message) || error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
});
