"""The real helm against the real control plane (scripts/test-cluster up, see conftest.cluster).

Default release storage (Secrets, protobuf) and default server-side apply throughout.
Each test uses its own namespace.
"""

from __future__ import annotations

import base64
import json
import time

from conftest import SAMPLE, Cluster

OBJECT_KINDS = {
    "secrets": "/api/v1/namespaces/{ns}/secrets",
    "serviceaccounts": "/api/v1/namespaces/{ns}/serviceaccounts",
    "roles": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "rolebindings": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "jobs": "/apis/batch/v1/namespaces/{ns}/jobs",
    "pods": "/api/v1/namespaces/{ns}/pods",
}


def status_fields(out: str) -> dict[str, str]:
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.isupper():
            fields[key] = value
    return fields


def job_succeeded(cluster: Cluster, ns: str, name: str) -> dict:
    code, job = cluster.kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{name}")
    assert code == 200, f"job {name}: {code} {job}"
    assert job["status"].get("succeeded", 0) >= 1, job["status"]
    conditions = {c["type"]: c["status"] for c in job["status"].get("conditions", [])}
    assert conditions.get("Complete") == "True", job["status"]
    return job


def release_objects(cluster: Cluster, ns: str, release: str) -> dict[str, list[str]]:
    found = {}
    for kind, path in OBJECT_KINDS.items():
        found[kind] = cluster.kube.names(path.format(ns=ns) + f"?labelSelector=app.kubernetes.io/instance%3D{release}")
    found["release-records"] = cluster.kube.names(
        f"/api/v1/namespaces/{ns}/secrets?labelSelector=owner%3Dhelm,name%3D{release}"
    )
    return found


def test_install_upgrade_list_uninstall(cluster: Cluster) -> None:
    helm, kube, ns, rel = cluster.helm, cluster.kube, "helm-e2e", "sample-e2e"
    helm("uninstall", rel, "-n", ns, "--ignore-not-found", "--wait")  # a cluster reused by hand

    r = helm("install", rel, str(SAMPLE), "-n", ns, "--create-namespace", "--wait", "--wait-for-jobs", "--timeout", "2m")
    assert r.rc == 0, str(r)
    fields = status_fields(r.out)
    assert fields["NAME"] == rel and fields["NAMESPACE"] == ns
    assert (fields["STATUS"], fields["REVISION"], fields["DESCRIPTION"]) == ("deployed", "1", "Install complete")
    assert "LAST DEPLOYED" in fields and r.out.count("TEST SUITE: None") == 1
    assert r.out.endswith(f"NOTES:\nRelease {rel} (revision 1) of sample in namespace {ns}.\nThe Job is {rel}-job-1.\n")

    # Release record: a Secret written by the default storage driver.
    code, record = kube.get(f"/api/v1/namespaces/{ns}/secrets/sh.helm.release.v1.{rel}.v1")
    assert code == 200, record
    assert record["type"] == "helm.sh/release.v1"
    assert record["metadata"]["labels"]["status"] == "deployed"
    # Every chart object exists; the Secret's stringData was applied.
    assert release_objects(cluster, ns, rel) | {"pods": []} == {
        "secrets": [f"{rel}-config"],
        "serviceaccounts": [f"{rel}-sa"],
        "roles": [f"{rel}-role"],
        "rolebindings": [f"{rel}-rolebinding"],
        "jobs": [f"{rel}-job-1"],
        "pods": [],
        "release-records": [f"sh.helm.release.v1.{rel}.v1"],
    }
    code, secret = kube.get(f"/api/v1/namespaces/{ns}/secrets/{rel}-config")
    assert base64.b64decode(secret["data"]["message"]).decode() == "hello"
    # --wait-for-jobs returned only once the Job completed.
    job = job_succeeded(cluster, ns, f"{rel}-job-1")
    managers = job["metadata"].get("managedFields") or []
    if managers:  # server-side apply is helm v4's default: the field manager applied
        assert any(m.get("operation") == "Apply" for m in managers), managers

    r = helm("upgrade", rel, str(SAMPLE), "-n", ns, "--wait", "--wait-for-jobs", "--set", "message=second")
    assert r.rc == 0, str(r)
    assert r.out.startswith(f'Release "{rel}" has been upgraded. Happy Helming!\n')
    fields = status_fields(r.out)
    assert (fields["STATUS"], fields["REVISION"], fields["DESCRIPTION"]) == ("deployed", "2", "Upgrade complete")
    job_succeeded(cluster, ns, f"{rel}-job-2")
    code, secret = kube.get(f"/api/v1/namespaces/{ns}/secrets/{rel}-config")
    assert base64.b64decode(secret["data"]["message"]).decode() == "second"
    assert release_objects(cluster, ns, rel)["jobs"] == [f"{rel}-job-2"]  # helm deleted the old Job

    # A fresh process lists it (state lives in the cluster only).
    r = helm("list", "-n", ns, "-o", "json")
    assert r.rc == 0, str(r)
    listed = json.loads(r.out)
    assert [{k: v for k, v in e.items() if k != "updated"} for e in listed] == [
        {"name": rel, "namespace": ns, "revision": "2", "status": "deployed", "chart": "sample-0.1.0", "app_version": "1.0.0"}
    ]
    r = helm("list", "-A")
    assert r.rc == 0, str(r)
    header, *rows = r.out.splitlines()
    assert header.split() == ["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP", "VERSION"]
    assert any(row.split()[:3] == [rel, ns, "2"] for row in rows), r.out

    r = helm("status", rel, "-n", ns)
    assert r.rc == 0 and status_fields(r.out)["REVISION"] == "2", str(r)

    r = helm("history", rel, "-n", ns, "-o", "json")
    assert r.rc == 0, str(r)
    history = json.loads(r.out)
    assert [(h["revision"], h["status"], h["description"]) for h in history] == [
        (1, "superseded", "Install complete"),
        (2, "deployed", "Upgrade complete"),
    ]

    r = helm("get", "values", rel, "-n", ns, "-o", "json")
    assert (r.rc, json.loads(r.out)) == (0, {"message": "second"}), str(r)
    r = helm("get", "values", rel, "-n", ns, "--all", "-o", "json")
    assert r.rc == 0 and json.loads(r.out)["exitCode"] == 0 and json.loads(r.out)["message"] == "second"

    r = helm("upgrade", rel, str(SAMPLE), "-n", ns, "--reuse-values", "--set", "extra.k=v", "--wait", "--wait-for-jobs")
    assert r.rc == 0, str(r)
    r = helm("get", "values", rel, "-n", ns)
    assert r.rc == 0 and r.out == "USER-SUPPLIED VALUES:\nextra:\n  k: v\nmessage: second\n", str(r)
    r = helm("upgrade", rel, str(SAMPLE), "-n", ns, "--reset-values", "--wait", "--wait-for-jobs")
    assert r.rc == 0, str(r)
    r = helm("get", "values", rel, "-n", ns, "-o", "json")
    assert (r.rc, r.out) == (0, "null\n"), str(r)  # helm stores no empty config: prints null

    r = helm("uninstall", rel, "-n", ns, "--wait")
    assert (r.rc, r.out) == (0, f'release "{rel}" uninstalled\n'), str(r)
    # Nothing left behind (Job pods go with their Job; allow the controller a moment).
    empty = {k: [] for k in [*OBJECT_KINDS, "release-records"]}
    left = release_objects(cluster, ns, rel)
    for _ in range(60):
        if left == empty:
            break
        time.sleep(0.5)
        left = release_objects(cluster, ns, rel)
    assert left == empty
    r = helm("list", "-n", ns, "-o", "json")
    assert (r.rc, json.loads(r.out)) == (0, []), str(r)


def test_failing_job_fails_wait_for_jobs(cluster: Cluster) -> None:
    helm, ns, rel = cluster.helm, "helm-fail", "failing"
    helm("uninstall", rel, "-n", ns, "--ignore-not-found")
    r = helm(
        "install", rel, str(SAMPLE), "-n", ns, "--create-namespace",
        "--set", "exitCode=1", "--wait", "--wait-for-jobs", "--timeout", "90s",
    )
    assert r.rc == 1, str(r)
    assert r.err.startswith("Error: INSTALLATION FAILED: "), r.err
    assert f"{rel}-job-1" in r.err and "failed" in r.err, r.err
    r = helm("status", rel, "-n", ns)
    assert r.rc == 0 and status_fields(r.out)["STATUS"] == "failed", str(r)
    r = helm("uninstall", rel, "-n", ns)
    assert r.rc == 0, str(r)


def test_upgrade_install_and_missing_releases(cluster: Cluster) -> None:
    helm, ns = cluster.helm, "helm-misc"
    helm("uninstall", "fresh", "-n", ns, "--ignore-not-found")
    r = helm("upgrade", "--install", "fresh", str(SAMPLE), "-n", ns, "--create-namespace", "--wait", "--wait-for-jobs")
    assert r.rc == 0, str(r)
    assert r.out.startswith('Release "fresh" does not exist. Installing it now.\nNAME: fresh\n'), r.out
    assert status_fields(r.out)["REVISION"] == "1"
    r = helm("upgrade", "-i", "fresh", str(SAMPLE), "-n", ns, "--set", "message=again", "--wait", "--wait-for-jobs")
    assert r.rc == 0 and status_fields(r.out)["REVISION"] == "2", str(r)

    r = helm("upgrade", "absent", str(SAMPLE), "-n", ns)
    assert (r.rc, r.err) == (1, 'Error: UPGRADE FAILED: "absent" has no deployed releases\n'), str(r)
    r = helm("status", "absent", "-n", ns)
    assert (r.rc, r.err) == (1, "Error: release: not found\n"), str(r)
    r = helm("uninstall", "absent", "-n", ns)
    assert r.rc == 1 and r.err.startswith("Error: uninstall: Release not loaded: absent: release: not found"), str(r)
    r = helm("uninstall", "absent", "-n", ns, "--ignore-not-found")
    assert r.rc == 0, str(r)

    r = helm("uninstall", "fresh", "-n", ns)
    assert r.rc == 0, str(r)
