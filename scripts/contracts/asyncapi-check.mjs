// Validates an AsyncAPI document with the official parser (@asyncapi/parser, its default
// rulesets: the specification's JSON Schemas, the bindings' schemas and the spectral rules).
// Usage: node scripts/contracts/asyncapi-check.mjs PARSER_HOME DOCUMENT
// PARSER_HOME is where `npm ci` installed scripts/contracts/package-lock.json. Prints every
// diagnostic, one line each; exits 1 when any has severity error, or when nothing was parsed.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [home, file] = process.argv.slice(2);
if (!home || !file) {
  console.error('usage: node asyncapi-check.mjs PARSER_HOME DOCUMENT');
  process.exit(2);
}
const require = createRequire(join(home, 'package.json'));
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');
const version = require('@asyncapi/parser/package.json').version;

const { document, diagnostics } = await new Parser().parse(await readFile(file, 'utf8'));
const names = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([k, v]) => [v, k]));
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === DiagnosticSeverity.Error) errors += 1;
  console.log(`${names[d.severity] ?? d.severity}: ${d.code}: ${d.message} at /${d.path.join('/')}`);
}
if (!document) {
  console.log(`@asyncapi/parser ${version}: the document could not be parsed`);
  process.exit(1);
}
const channels = document.channels().length;
const operations = document.operations().length;
const messages = document.messages().length;
console.log(
  `@asyncapi/parser ${version}: AsyncAPI ${document.version()}, ${channels} channels, ` +
    `${operations} operations, ${messages} messages; ${diagnostics.length} diagnostics, ${errors} errors`,
);
process.exit(errors > 0 ? 1 : 0);
