"""Shared fixtures of the helm tests (run by scripts/run-tests through pytest).

`helm` is $HELM, else scripts/helm-path's: the real helm v4 built from source by scripts/tools.
The cluster tests run on $ITER8_TEST_KUBECONFIG when set (scripts/run-tests starts one
control plane for the Python tests), else on a real control plane of their own
(`scripts/test-cluster up`, the node agent running the sample chart's Job commands on the
host), stopped at the end.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(__file__).resolve().parent / "testdata"
SAMPLE = TESTDATA / "sample"
BROKEN = TESTDATA / "broken"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"rc={self.rc}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


def helm_command() -> str:
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "helm-path")], check=True, capture_output=True, text=True
    ).stdout.strip()


class Helm:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.cmd = helm_command()
        self.env = dict(os.environ)
        if env:
            self.env.update(env)

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 180) -> Result:
        proc = subprocess.run(
            [self.cmd, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=ROOT,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def helm() -> Helm:
    # Offline tests must never reach a cluster: point helm at an unreachable kubeconfig.
    tmp = tempfile.mkdtemp(prefix="helm-offline-")
    kubeconfig = Path(tmp) / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: none\n  cluster:\n    server: http://127.0.0.1:9\n"
        "contexts:\n- name: none\n  context:\n    cluster: none\n    user: none\ncurrent-context: none\n"
        "users:\n- name: none\n  user: {}\n"
    )
    return Helm({"KUBECONFIG": str(kubeconfig), "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp})


def rendered_values(manifest: str) -> dict[str, Any]:
    """The values the sample chart was rendered with (its Secret carries them as JSON)."""
    for doc in yaml.safe_load_all(manifest):
        if doc and doc.get("kind") == "Secret":
            return json.loads(doc["stringData"]["values.json"])  # type: ignore[no-any-return]
    raise AssertionError(f"no Secret in the rendered manifest:\n{manifest}")


# --------------------------------------------------------------------------------------------
# The test cluster (scripts/test-cluster: the real control plane) and a tiny API client
# --------------------------------------------------------------------------------------------


class Kube:
    """Reads objects straight from the API server named by a kubeconfig (current context)."""

    def __init__(self, kubeconfig: str) -> None:
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {}) or {}
        self.server = cluster["server"].rstrip("/")
        self.headers = {"Accept": "application/json"}
        if user.get("token"):
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self.ssl: ssl.SSLContext | None = None
        if self.server.startswith("https"):
            self.ssl = ssl.create_default_context()
            tmp = Path(tempfile.mkdtemp(prefix="kube-"))

            def material(key: str, data_key: str) -> str | None:
                if cluster.get(key) or user.get(key):
                    return str(cluster.get(key) or user.get(key))
                data = cluster.get(data_key) or user.get(data_key)
                if not data:
                    return None
                path = tmp / data_key
                path.write_bytes(base64.b64decode(data))
                return str(path)

            ca = material("certificate-authority", "certificate-authority-data")
            if ca:
                self.ssl.load_verify_locations(ca)
            if cluster.get("insecure-skip-tls-verify"):
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
            cert = material("client-certificate", "client-certificate-data")
            key = material("client-key", "client-key-data")
            if cert and key:
                self.ssl.load_cert_chain(cert, key)

    def get(self, path: str) -> tuple[int, Any]:
        req = urllib.request.Request(self.server + path, headers=self.headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            body = err.read()
            try:
                return err.code, json.loads(body)
            except ValueError:
                return err.code, body.decode(errors="replace")

    def names(self, path: str) -> list[str]:
        code, body = self.get(path)
        assert code == 200, f"GET {path}: {code} {body}"
        return sorted(item["metadata"]["name"] for item in body.get("items", []))


@dataclass
class Cluster:
    kubeconfig: str
    kube: Kube
    helm: Helm


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    script = ROOT / "scripts" / "test-cluster"
    external = os.environ.get("ITER8_TEST_KUBECONFIG")
    if external:
        yield Cluster(external, Kube(external), Helm({"KUBECONFIG": external}))
        return
    # A private instance (own state dir), so a cluster started by hand is left alone; the
    # sample chart's Job image runs its command on this machine.
    env = {**os.environ, "ITER8_TEST_CLUSTER_DIR": tempfile.mkdtemp(prefix="helm-test-cluster-")}
    up = subprocess.run(
        ["bash", str(script), "up", "--image", "*=@host"],
        capture_output=True, text=True, cwd=ROOT, timeout=1800, env=env,
    )
    match = re.search(r"export KUBECONFIG=(\S+)", up.stdout)
    if up.returncode != 0 or not match:
        pytest.fail(f"scripts/test-cluster up failed (rc={up.returncode}):\n{up.stdout}\n{up.stderr}")
    kubeconfig = match.group(1).strip("'\"")
    try:
        yield Cluster(kubeconfig, Kube(kubeconfig), Helm({"KUBECONFIG": kubeconfig}))
    finally:
        subprocess.run(["bash", str(script), "down"], capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
