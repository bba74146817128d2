"""Our chart as a subchart: a parent chart that depends on it (a file:// dependency, with the
usual `condition: iter8.enabled`), `helm dependency build` and `helm template` with the real
helm v4 and v3 (scripts/helm-path), `global` values passed down, ours set under `iter8:`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from chartlib import CHART, ROOT


def helm_binary(major: int) -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm-path"), str(major)], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def run(helm: str, *args: str) -> str:
    p = subprocess.run([helm, *args], capture_output=True, text=True)
    assert p.returncode == 0, f"helm {' '.join(args)}: {p.stdout}{p.stderr}"
    return p.stdout


def parent_chart(tmp: Path, iter8_values: dict, enabled: bool = True) -> Path:
    chart = tmp / "shop"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "shop",
                "version": "1.0.0",
                "dependencies": [
                    {"name": "iter8", "version": "0.1.0", "repository": f"file://{CHART}", "condition": "iter8.enabled"}
                ],
            }
        )
    )
    (chart / "values.yaml").write_text(
        yaml.safe_dump(
            {
                "global": {"imageRegistry": "registry.example.com", "labels": {"shop": "yes"}},
                "iter8": {"enabled": enabled, **iter8_values},
            }
        )
    )
    # the parent's own object, reading the same global values
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-shop\n"
        "data:\n  registry: {{ .Values.global.imageRegistry | quote }}\n"
    )
    return chart


EXPERIMENT = {
    "tasks": ["http", "assess"],
    "http": {"url": "http://shop.prod/"},
    "assess": {"SLOs": {"upper": {"http/error-count": 0}}},
    "commonLabels": {"team": "shop"},
}


@pytest.mark.parametrize("major", [4, 3])
def test_parent_chart_renders_ours_as_a_subchart_with_global_values(tmp_path, major):
    helm = helm_binary(major)
    chart = parent_chart(tmp_path, EXPERIMENT)
    run(helm, "dependency", "build", str(chart))
    assert (chart / "charts" / "iter8-0.1.0.tgz").is_file()
    objs = [o for o in yaml.safe_load_all(run(helm, "template", "web", str(chart), "-n", "prod")) if o]
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(
        ["ConfigMap", "Job", "NetworkPolicy", "Pod", "Role", "Role", "RoleBinding", "RoleBinding",
         "Secret", "ServiceAccount", "ServiceAccount"]
    ), kinds
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap"]
    assert cm["data"] == {"registry": "registry.example.com"}
    (job,) = [o for o in objs if o["kind"] == "Job"]
    assert job["metadata"]["name"] == "web-1-job"
    assert job["metadata"]["namespace"] == "prod"
    assert job["metadata"]["labels"]["team"] == "shop"
    (secret,) = [o for o in objs if o["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "web"
    experiment = yaml.safe_load(secret["stringData"]["experiment.yaml"])
    assert experiment["spec"][0] == {"task": "http", "with": {"url": "http://shop.prod/"}}
    # helm lint of the parent with its subchart: strict, clean
    out = run(helm, "lint", "--strict", "--with-subcharts", str(chart))
    assert "0 chart(s) failed" in out, out


def test_parent_chart_condition_turns_ours_off(tmp_path):
    helm = helm_binary(4)
    chart = parent_chart(tmp_path, EXPERIMENT, enabled=False)
    run(helm, "dependency", "build", str(chart))
    objs = [o for o in yaml.safe_load_all(run(helm, "template", "web", str(chart))) if o]
    assert [o["kind"] for o in objs] == ["ConfigMap"]


def test_parent_chart_gets_our_schema_errors(tmp_path):
    helm = helm_binary(4)
    chart = parent_chart(tmp_path, {**EXPERIMENT, "runer": "job"})
    run(helm, "dependency", "build", str(chart))
    p = subprocess.run([helm, "template", "web", str(chart)], capture_output=True, text=True)
    assert p.returncode != 0
    assert "iter8" in p.stderr and "additional properties 'runer' not allowed" in p.stderr, p.stderr
