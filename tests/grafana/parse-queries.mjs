// Parses LogQL and TraceQL queries with Grafana's own grammars, the ones Grafana's query
// editors use (npm @grafana/lezer-logql, @grafana/lezer-traceql), and prints their syntax trees
// as JSON, for tests/test_dashboards.py to check what the queries select.
//
// Input on stdin:  [{"id": "...", "language": "logql" | "traceql", "query": "..."}]
// Output on stdout: [{"id": "...", "error": null | "...", "tree": Node}]
//   Node = {"name": grammar node name, "text": the source it covers, "children": [Node]}
//
// The parsers run in strict mode: a query the grammar does not accept is an error (lezer
// otherwise recovers and inserts error nodes, which is what an editor wants, not a test).
import { readFileSync } from 'node:fs';
import { parser as logql } from '@grafana/lezer-logql';
import { parser as traceql } from '@grafana/lezer-traceql';

const PARSERS = {
  logql: logql.configure({ strict: true }),
  traceql: traceql.configure({ strict: true }),
};

function toJson(cursor, text) {
  const node = { name: cursor.name, text: text.slice(cursor.from, cursor.to), children: [] };
  if (cursor.firstChild()) {
    do node.children.push(toJson(cursor, text));
    while (cursor.nextSibling());
    cursor.parent();
  }
  return node;
}

const input = JSON.parse(readFileSync(0, 'utf8'));
const output = input.map(({ id, language, query }) => {
  const parser = PARSERS[language];
  if (!parser) return { id, error: `unknown query language ${language}`, tree: null };
  try {
    return { id, error: null, tree: toJson(parser.parse(query).cursor(), query) };
  } catch (error) {
    return { id, error: String(error.message ?? error), tree: null };
  }
});
process.stdout.write(JSON.stringify(output));
