// CDK's CloudFormation template validator in a Node.js process of its own (stacks/template_validation.py
// starts it and says why). Argument: the directory holding aws-cdk-lib's package (the version the app's
// Python bindings carry). The validator is built at once, while the app builds its constructs in the
// jsii runtime's process; then each line on stdin is one request, answered by one line on stdout:
//   {"describe": true}                      -> {"version": ..., "ruleIds": [...]}
//   {"validate": [{stackConstructPath, templatePath, accountId?, region?}, ...]}
//                                           -> {"report": <CDK's PolicyValidationPluginReport>}
// and any failure -> {"error": "<message>"}. Nothing else is written to stdout.
"use strict";
const path = require("node:path");
const readline = require("node:readline");

const library = process.argv[2];
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
  if (Array.isArray(request.validate)) {
    const stackTemplates = request.validate;
    return { report: plugin.validate({ stackTemplates, templatePaths: stackTemplates.map((s) => s.templatePath) }) };
  }
  return { error: "unknown request" };
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
