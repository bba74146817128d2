"""Render charts/iter8 with Helm's own engine (helm-python-sdk: Helm v4 as a C library).

Used by the chart tests and by `scripts/chart-snapshot` (which regenerates the committed
snapshots under tests/chart/snapshots/ from charts/iter8/ci/*-values.yaml).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "iter8"
CI_VALUES = CHART / "ci"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `over` into a copy of `base` (as helm merges -f files and --set flags)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_values(*flags: str) -> dict[str, Any]:
    """Values from `--set` flags, parsed by Helm's own parser, later flags winning."""
    values: dict[str, Any] = {}
    for f in flags:
        values = merge(values, helm.parse_set_string(f))
    return values


def render_raw(
    values: dict[str, Any] | None = None,
    name: str = "hello",
    namespace: str = "default",
    revision: int = 1,
) -> dict[str, str]:
    """Template path -> rendered text (raises helm's errors: schema, fail)."""
    with helm.Chart.load(str(CHART)) as chart:
        return chart.render(
            values=values or {},
            name=name,
            namespace=namespace,
            revision=revision,
            is_install=revision == 1,
            is_upgrade=revision > 1,
        )


def render(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects (NOTES.txt excluded), in template order."""
    objs: list[dict[str, Any]] = []
    for path, text in sorted(render_raw(values, **kw).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objs.append(doc)
    return objs


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objs
        if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def experiment(objs: list[dict[str, Any]], release: str = "hello") -> dict[str, Any]:
    """The experiment document of the release's Secret."""
    secret = one(objs, "Secret", release)
    return yaml.safe_load(secret["stringData"]["experiment.yaml"])


def snapshot_text(values_file: Path) -> str:
    """The committed form of a rendered ci values file: every template, in path order."""
    values = yaml.safe_load(values_file.read_text()) or {}
    rendered = render_raw(values, name="iter8-ci", namespace="default", revision=1)
    parts = [
        f"# Rendered from charts/iter8/ci/{values_file.name} (release iter8-ci, namespace default,"
        " revision 1).\n# Regenerate: make snapshot\n"
    ]
    for path, text in sorted(rendered.items()):
        if not text.strip():
            continue
        parts.append(f"---\n# Source: {path}\n{text.strip()}\n")
    return "".join(parts)


def snapshot_path(values_file: Path) -> Path:
    return SNAPSHOTS / values_file.name.replace("-values.yaml", ".yaml")


def ci_values_files() -> list[Path]:
    return sorted(CI_VALUES.glob("*-values.yaml"))
