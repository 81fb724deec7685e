"""Lists the series selectors of PromQL expressions, with a real PromQL
parser (PyPI promql-parser, the Rust `promql-parser` crate's binding).

Usage: promql_selectors.py < expressions.json

Reads a JSON list of expressions; prints a JSON list with, per expression,
{"selectors": [{"name": ..., "matchers": [[label, op, value], ...]}],
 "groupings": [{"labels": [...], "metrics": [...]}]} or {"error": ...} when
it does not parse. `name` is the metric name, from the selector or its
`__name__` matcher (null when neither gives one). A grouping is the label
list of an aggregation's `by`/`without` or a binary operator's
`on`/`ignoring`, with the metrics of the expressions it applies to.
"""
import json
import sys

import promql_parser as p

OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def names(expr):
    return sorted({s["name"] for s in selectors(expr) if s["name"]})


def groupings(expr):
    found = []

    def visit(node):
        if isinstance(node, p.AggregateExpr) and node.modifier is not None:
            found.append({"labels": list(node.modifier.labels), "metrics": names(node.expr)})
        if isinstance(node, p.BinaryExpr) and node.modifier is not None and node.modifier.matching is not None:
            metrics = sorted(set(names(node.lhs)) | set(names(node.rhs)))
            found.append({"labels": list(node.modifier.matching.labels), "metrics": metrics})

    p.walk(expr, visit)
    return found


def selectors(expr):
    found = []

    def visit(node):
        if isinstance(node, p.VectorSelector):
            matchers = [[m.name, OPS[str(m.op).split(".")[-1]], m.value] for m in node.matchers.matchers]
            for group in node.matchers.or_matchers:
                matchers += [[m.name, OPS[str(m.op).split(".")[-1]], m.value] for m in group]
            name = node.name or next((v for n, o, v in matchers if n == "__name__" and o == "="), None)
            found.append({"name": name, "matchers": [m for m in matchers if m[0] != "__name__"]})

    p.walk(expr, visit)
    return found


out = []
for text in json.load(sys.stdin):
    try:
        expr = p.parse(text)
        out.append({"selectors": selectors(expr), "groupings": groupings(expr)})
    except Exception as e:  # a parse error names the expression's fault
        out.append({"error": str(e)})
json.dump(out, sys.stdout)
