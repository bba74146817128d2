"""Render charts/iter8 with the real helm binary (v4 from scripts/tools, or $HELM).

Revision 1 is `helm install --dry-run=client -o json` (the manifest and the hooks, as
`helm template` renders them, plus NOTES.txt, which `helm template` does not print). Revision
N > 1 is `helm upgrade --dry-run=client -o json` over a release of revision N-1 preloaded in
helm's memory storage driver (HELM_DRIVER=memory, HELM_MEMORY_DRIVER_DATA); an upgrade asks
an API server for its version and API groups, so those renders use a real one:
$ITER8_TEST_KUBECONFIG, else a control plane started here once (`scripts/test-cluster up`
without a node agent) and stopped at exit. Nothing is ever installed.

Used by the chart tests and by `scripts/chart-snapshot` (which regenerates the committed
snapshots under tests/chart/snapshots/ from charts/iter8/ci/*-values.yaml).
"""

from __future__ import annotations

import atexit
import copy
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "iter8"
CI_VALUES = CHART / "ci"
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
NOTES = "iter8/templates/NOTES.txt"


class HelmError(Exception):
    """helm refused to render (schema violation, `fail`, bad --set): its stderr."""


def helm_binary() -> str:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm-path")], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


_WORK = Path(tempfile.mkdtemp(prefix="chart-tests-"))
_DISCOVERY: dict[str, str] = {}


def _cleanup() -> None:
    if "dir" in _DISCOVERY:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-cluster"), "down"],
            env={**os.environ, "ITER8_TEST_CLUSTER_DIR": _DISCOVERY["dir"]},
            capture_output=True,
            timeout=120,
        )
    subprocess.run(["rm", "-rf", str(_WORK)], check=False)


atexit.register(_cleanup)


def _discovery_kubeconfig() -> str:
    """A kubeconfig of a real API server (for `helm upgrade`'s version and API discovery)."""
    if os.environ.get("ITER8_TEST_KUBECONFIG"):
        return os.environ["ITER8_TEST_KUBECONFIG"]
    if "kubeconfig" not in _DISCOVERY:
        state = str(_WORK / "cluster")
        _DISCOVERY["dir"] = state
        env = {**os.environ, "ITER8_TEST_CLUSTER_DIR": state, "ITER8_NODE_AGENT": ""}
        up = subprocess.run(
            ["bash", str(ROOT / "scripts" / "test-cluster"), "up"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800,
        )
        if up.returncode != 0:
            raise RuntimeError(f"scripts/test-cluster up failed:\n{up.stdout}\n{up.stderr}")
        _DISCOVERY["kubeconfig"] = str(Path(state) / "kubeconfig")
    return _DISCOVERY["kubeconfig"]


def _helm(args: list[str], releases: list[dict[str, Any]], kubeconfig: str | None = None) -> str:
    """Runs helm with a private home, the memory storage driver holding `releases`, and
    (unless given) a kubeconfig that reaches nothing; stdout, or HelmError with stderr."""
    work = Path(tempfile.mkdtemp(dir=_WORK))
    data = work / "releases.json"
    data.write_text(json.dumps(releases))
    nowhere = work / "kubeconfig"
    nowhere.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: http://127.0.0.1:9\n"
        "contexts:\n- name: none\n  context:\n    cluster: none\n    user: none\ncurrent-context: none\n"
        "users:\n- name: none\n  user: {}\n"
    )
    env = {
        **os.environ,
        "HELM_DRIVER": "memory",
        "HELM_MEMORY_DRIVER_DATA": str(data),
        "KUBECONFIG": kubeconfig or str(nowhere),
        "HELM_CACHE_HOME": str(work),
        "HELM_CONFIG_HOME": str(work),
        "HELM_DATA_HOME": str(work),
    }
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def _values_file(values: dict[str, Any]) -> str:
    f = Path(tempfile.mkstemp(dir=_WORK, suffix=".json")[1])
    f.write_text(json.dumps(values))
    return str(f)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `over` into a copy of `base` (as helm merges -f files and --set flags)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


_EMPTY_CHART: list[Path] = []


def set_values(*flags: str) -> dict[str, Any]:
    """Values from `--set` flags, parsed by helm itself (the user-supplied values of a dry-run
    install of an empty chart), later flags winning."""
    if not _EMPTY_CHART:
        chart = _WORK / "empty"
        chart.mkdir()
        (chart / "Chart.yaml").write_text("apiVersion: v2\nname: empty\nversion: 0.1.0\n")
        _EMPTY_CHART.append(chart)
    args = ["install", "values", str(_EMPTY_CHART[0]), "--dry-run=client", "-o", "json"]
    for f in flags:
        args += ["--set", f]
    return json.loads(_helm(args, []))["config"] or {}


def _split_manifest(manifest: str) -> dict[str, str]:
    """Template path -> its rendered text (documents of one template joined by `---`), as
    helm prints them under `# Source:` headers."""
    out: dict[str, list[str]] = {}
    for doc in re.split(r"^---\n", manifest, flags=re.M):
        m = re.match(r"# Source: (\S+)\n", doc)
        if not m:
            continue
        out.setdefault(m.group(1), []).append(doc[m.end():].strip())
    return {path: "\n---\n".join(docs) + "\n" for path, docs in out.items()}


def render_raw(
    values: dict[str, Any] | None = None,
    name: str = "hello",
    namespace: str = "default",
    revision: int = 1,
) -> dict[str, str]:
    """Template path -> rendered text of every template that renders something, NOTES.txt
    included (raises HelmError with helm's message: schema, fail)."""
    vf = _values_file(values or {})
    common = [name, str(CHART), "-n", namespace, "-f", vf, "--dry-run=client", "-o", "json"]
    if revision == 1:
        out = _helm(["install", *common], [])
    else:
        previous = {
            "name": name,
            "namespace": namespace,
            "version": revision - 1,
            "info": {"status": "deployed"},
        }
        out = _helm(["upgrade", *common], [previous], _discovery_kubeconfig())
    rel = json.loads(out)
    assert rel["version"] == revision, rel["version"]
    rendered = _split_manifest(rel.get("manifest", ""))
    # hooks (the `helm test` pod) are kept apart from the manifest; `helm template` prints them
    for hook in sorted(rel.get("hooks") or [], key=lambda h: (h["path"], h["name"])):
        text = hook["manifest"].strip()
        before = rendered.get(hook["path"])
        rendered[hook["path"]] = (before + "---\n" if before else "") + text + "\n"
    notes = rel.get("info", {}).get("notes", "")
    if notes:
        rendered[NOTES] = notes
    return rendered


def render(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """The rendered Kubernetes objects (NOTES.txt excluded), in template path order."""
    objs: list[dict[str, Any]] = []
    for path, text in sorted(render_raw(values, **kw).items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objs.append(doc)
    return objs


def lint(values: dict[str, Any] | None = None, strict: bool = True) -> dict[str, Any]:
    """`helm lint [--strict] charts/iter8 [-f values]`: its messages with their severity
    (1 INFO, 2 WARNING, 3 ERROR), and `errors` (the messages of a failed lint)."""
    args = ["lint", str(CHART)]
    if strict:
        args.append("--strict")
    if values is not None:
        args += ["-f", _values_file(values)]
    proc = subprocess.run([helm_binary(), *args], capture_output=True, text=True, cwd=ROOT)
    severity = {"INFO": 1, "WARNING": 2, "ERROR": 3}
    messages = []
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"\[(INFO|WARNING|ERROR)\] (.*)", line.strip())
        if m:
            messages.append({"severity": severity[m.group(1)], "message": m.group(2)})
    errors = [] if proc.returncode == 0 else [proc.stdout + proc.stderr]
    return {"messages": messages, "errors": errors}


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
