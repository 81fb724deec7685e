"""`helm lint` with Helm's own Go library (helm-sdkpy, Helm v4).

Usage: helm_lint.py CHART [VALUES.yaml ...]

Lints CHART with its own values, then once per VALUES file. helm-sdkpy's
Lint takes no values argument, so for a values file the chart is copied to
a temporary directory with values.yaml replaced by the chart's values merged
with the file the way `helm lint -f FILE` merges them (maps merge, a null
removes a key, anything else replaces). Messages are printed with their
severity; any error or warning fails (exit 1). helm-sdkpy reports severities
but loses the message text, so on failure the same lint is repeated with the
helm CLI (env HELM) to show what went wrong.
"""
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile

import helm_sdkpy
import yaml

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base, override):
    """Helm's coalescing of a user values file over chart defaults."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def lint(path: str) -> dict:
    config = helm_sdkpy.Configuration()
    return asyncio.run(helm_sdkpy.Lint(config).run(path))


def explain(chart: str, values: str | None) -> None:
    helm = os.environ.get("HELM")
    if not helm:
        return
    cmd = [helm, "lint", "--strict", chart] + (["-f", values] if values else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    print(out.stdout + out.stderr, file=sys.stderr)


def check(chart: str, values: str | None) -> bool:
    label = os.path.basename(values) if values else "default values"
    with tempfile.TemporaryDirectory() as tmp:
        target = chart
        if values:
            target = os.path.join(tmp, os.path.basename(os.path.abspath(chart)))
            shutil.copytree(chart, target)
            with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
                merged = yaml.safe_load(f) or {}
            with open(values, encoding="utf-8") as f:
                merged = merge(merged, yaml.safe_load(f) or {})
            with open(os.path.join(target, "values.yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(merged, f, sort_keys=False)
        result = lint(target)
    if result.get("TotalChartsLinted") != 1:
        print(f"helm-lint: {label}: linted {result.get('TotalChartsLinted')} charts", file=sys.stderr)
        return False
    messages = result.get("Messages") or []
    worst = 0
    for m in messages:
        severity = m.get("Severity", 0)
        worst = max(worst, severity)
        print(f"helm-lint: {label}: [{SEVERITY.get(severity, severity)}] {m.get('Path')}")
    failed = worst >= 2 or bool(result.get("Errors"))
    print(f"helm-lint: {label}: {'FAILED' if failed else 'ok'} ({len(messages)} messages)")
    if failed:
        explain(chart, values)
    return not failed


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    chart, values_files = sys.argv[1], sys.argv[2:]
    results = [check(chart, None)] + [check(chart, v) for v in values_files]
    print(f"helm-lint: {sum(results)} of {len(results)} configurations passed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
