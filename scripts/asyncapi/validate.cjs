// Validates an AsyncAPI document with the official parser (@asyncapi/parser,
// pinned in package.json beside this file, installed into .tools/asyncapi by
// scripts/install-test-deps.sh). Prints every diagnostic; exits 1 on an error.
// On success prints the document's channel, operation and message ids as JSON.
//
//   node scripts/asyncapi/validate.cjs openapi/asyncapi.json
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const tools = process.env.ASYNCAPI_TOOLS || path.join(root, '.tools', 'asyncapi');
const { Parser } = require(path.join(tools, 'node_modules', '@asyncapi', 'parser'));

async function main() {
  const file = process.argv[2];
  if (!file) throw new Error('usage: validate.cjs FILE');
  const { document, diagnostics } = await new Parser().parse(fs.readFileSync(file, 'utf8'));
  const severity = ['error', 'warning', 'info', 'hint'];
  for (const d of diagnostics) {
    console.error(`${severity[d.severity]} ${d.code} at ${d.path.join('.')}: ${d.message}`);
  }
  if (!document || diagnostics.some((d) => d.severity === 0)) {
    process.exit(1);
  }
  const ids = (collection) => collection.all().map((item) => item.id());
  console.log(JSON.stringify({
    version: document.version(),
    channels: ids(document.channels()),
    operations: ids(document.operations()),
    messages: ids(document.messages()),
  }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
