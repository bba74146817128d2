"""Chart tests, the conventions users know from other charts (helm create, cert-manager,
ingress-nginx): pod and CronJob settings, ServiceAccount and labels, `global`, and the values
policy scanners ask for. Rendered with Helm's engine, as test_chart.py."""

from __future__ import annotations

import pytest

from chartlib import CHART, find, one, render

HTTP = {"tasks": ["http"], "http": {"url": "http://127.0.0.1:8080/get"}}


def render_error(values) -> str:
    """The error helm gives for these values (schema or `fail`)."""
    with pytest.raises(Exception) as e:
        render(values)
    return str(e.value)


DIGEST = "sha256:" + "ab" * 32


def _pod(obj):
    spec = obj["spec"]
    return spec["template"] if obj["kind"] == "Job" else spec["jobTemplate"]["spec"]["template"]


@pytest.mark.parametrize("runner, kind", [("job", "Job"), ("cronjob", "CronJob")])
def test_pod_conventions_pull_secrets_annotations_labels_priority_spread(runner, kind):
    spread = [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway"}]
    values = {
        **HTTP,
        "runner": runner,
        "cronjobSchedule": "*/5 * * * *",
        "imagePullSecrets": [{"name": "regcred"}],
        "podAnnotations": {"cost-center": "qa"},
        "podLabels": {"team": "payments"},
        "priorityClassName": "batch-low",
        "topologySpreadConstraints": spread,
        "image": {"digest": DIGEST},
    }
    pod = _pod(one(render(values), kind))
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false", "cost-center": "qa"}
    assert pod["metadata"]["labels"]["team"] == "payments"
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "iter8"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["spec"]["priorityClassName"] == "batch-low"
    assert pod["spec"]["topologySpreadConstraints"] == spread
    # by digest: the tag is not used
    assert pod["spec"]["containers"][0]["image"] == f"ghcr.io/iter8-rs/iter8-runner@{DIGEST}"
    # defaults: none of them rendered
    pod = _pod(one(render({**HTTP, "runner": runner, "cronjobSchedule": "*/5 * * * *"}), kind))
    for key in ("imagePullSecrets", "priorityClassName", "topologySpreadConstraints"):
        assert key not in pod["spec"], key
    assert pod["spec"]["containers"][0]["image"].startswith("ghcr.io/iter8-rs/iter8-runner:")


def test_cronjob_time_zone_suspend_deadline_and_history():
    base = {**HTTP, "runner": "cronjob", "cronjobSchedule": "0 3 * * *"}
    spec = one(render(base), "CronJob")["spec"]
    assert "timeZone" not in spec and "startingDeadlineSeconds" not in spec
    assert (spec["suspend"], spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (False, 3, 3)
    values = {
        **base,
        "cronjob": {
            "timeZone": "Europe/Paris",
            "suspend": True,
            "startingDeadlineSeconds": 120,
            "successfulJobsHistoryLimit": 0,
            "failedJobsHistoryLimit": 10,
        },
    }
    spec = one(render(values), "CronJob")["spec"]
    assert spec["timeZone"] == "Europe/Paris"
    assert spec["suspend"] is True
    assert spec["startingDeadlineSeconds"] == 120
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (0, 10)


@pytest.mark.parametrize(
    "values, where",
    [
        ({"image": {"digest": "latest"}}, "digest"),
        ({"imagePullSecrets": ["regcred"]}, "imagePullSecrets"),
        ({"cronjob": {"suspend": "yes"}}, "suspend"),
        ({"cronjob": {"startingDeadlineSeconds": -1}}, "startingDeadlineSeconds"),
        ({"cronjob": {"concurrency": "Allow"}}, "concurrency"),
    ],
)
def test_new_values_are_checked_by_the_schema(values, where):
    err = render_error({**HTTP, **values})
    assert where in err, err


def test_global_values_of_a_parent_chart_are_accepted():
    objs = render({**HTTP, "global": {"imageRegistry": "registry.example.com", "anything": {"x": 1}}})
    assert one(objs, "Job")


def test_fail_on_slo_violation_reaches_the_runner_only_when_set():
    env = {e["name"]: e for e in one(render(HTTP), "Job")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "ITER8_FAIL_ON_SLO_VIOLATION" not in env
    pod = one(render({**HTTP, "failOnSLOViolation": True}), "Job")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["ITER8_FAIL_ON_SLO_VIOLATION"] == {"name": "ITER8_FAIL_ON_SLO_VIOLATION", "value": "true"}
    assert "failOnSLOViolation" in render_error({**HTTP, "failOnSLOViolation": "yes"})


# ---------------------------------------------------------------- ServiceAccount and commonLabels


def test_service_account_created_by_default_with_annotations_for_cloud_identity():
    objs = render(HTTP)
    sa = one(objs, "ServiceAccount", "hello-iter8")
    assert "annotations" not in sa["metadata"]
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/iter8"}
    objs = render({**HTTP, "serviceAccount": {"annotations": irsa, "name": "exp-runner"}})
    sa = one(objs, "ServiceAccount", "exp-runner")
    assert sa["metadata"]["annotations"] == irsa
    assert sa["metadata"]["namespace"] == "default"
    assert one(objs, "Job")["spec"]["template"]["spec"]["serviceAccountName"] == "exp-runner"
    assert one(objs, "RoleBinding", "hello-iter8")["subjects"] == [
        {"kind": "ServiceAccount", "name": "exp-runner", "namespace": "default"}
    ]


@pytest.mark.parametrize("runner, kind", [("job", "Job"), ("cronjob", "CronJob")])
def test_existing_service_account_is_used_and_bound_by_the_charts_roles(runner, kind):
    values = {
        **HTTP,
        "runner": runner,
        "cronjobSchedule": "*/5 * * * *",
        "tasks": ["ready", "http"],
        "ready": {"deploy": "web", "namespace": "apps"},
        "serviceAccount": {"create": False, "name": "platform-runner", "annotations": {"a": "b"}},
    }
    objs = render(values, namespace="team")
    assert [o["metadata"]["name"] for o in find(objs, "ServiceAccount")] == ["hello-iter8-test"]  # helm test's
    assert _pod(one(objs, kind))["spec"]["serviceAccountName"] == "platform-runner"
    subject = [{"kind": "ServiceAccount", "name": "platform-runner", "namespace": "team"}]
    assert one(objs, "RoleBinding", "hello-iter8")["subjects"] == subject
    ready = one(objs, "RoleBinding", "hello-iter8-ready")
    assert ready["metadata"]["namespace"] == "apps" and ready["subjects"] == subject
    # the Role itself is unchanged: the release's Secret only
    assert one(objs, "Role", "hello-iter8")["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hello"], "verbs": ["get", "patch"]}
    ]


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"serviceAccount": {"create": False}},
            "serviceAccount.name: missing; serviceAccount.create=false runs the runner as an existing ServiceAccount, so name it",
        ),
        (
            {"serviceAccount": {"name": "a"}, "serviceAccountName": "b"},
            "serviceAccountName (b) and serviceAccount.name (a) disagree; set one",
        ),
        (
            {"commonLabels": {"app.kubernetes.io/instance": "other"}},
            "commonLabels: app.kubernetes.io/instance is a label the chart sets itself",
        ),
        ({"podLabels": {"iter8.tools/revision": "9"}}, "podLabels: iter8.tools/revision is a label the chart sets itself"),
    ],
)
def test_service_account_and_label_mistakes_fail_with_the_fix(values, message):
    err = render_error({**HTTP, **values})
    assert message in err, err


def test_service_account_name_brings_its_own_permissions():
    objs = render({**HTTP, "tasks": ["ready", "http"], "ready": {"deploy": "x"}, "serviceAccountName": "mine"})
    runner_rbac = [
        o for o in objs
        if o["kind"] in ("Role", "RoleBinding", "ServiceAccount") and o["metadata"]["name"] != "hello-iter8-test"
    ]
    assert runner_rbac == []
    assert one(objs, "Job")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


def test_runner_none_needs_no_service_account():
    objs = render({**HTTP, "runner": "none", "serviceAccount": {"create": False}})
    assert [o["kind"] for o in objs] == ["Secret"]


@pytest.mark.parametrize(
    "values, where",
    [
        ({"serviceAccount": {"name": "Not_A_Name"}}, "/serviceAccount/name"),
        ({"serviceAccount": {"create": "no"}}, "/serviceAccount/create"),
        ({"serviceAccount": {"automount": True, "create": True}}, "additional properties 'automount' not allowed"),
        ({"serviceAccount": {"annotations": {"a": 1}}}, "/serviceAccount/annotations/a"),
        ({"commonLabels": {"team": 5}}, "/commonLabels/team"),
        ({"commonLabels": ["team"]}, "/commonLabels"),
    ],
)
def test_service_account_and_common_labels_are_checked_by_the_schema(values, where):
    err = render_error({**HTTP, **values})
    assert where in err, err


@pytest.mark.parametrize(
    "values",
    [
        {"runner": "job"},
        {"runner": "cronjob", "cronjobSchedule": "*/5 * * * *"},
        {"runner": "job", "tasks": ["ready", "http", "github"], "ready": {"service": "s", "namespace": "apps"},
         "github": {"owner": "o", "repo": "r", "token": "t"}},
    ],
    ids=["job", "cronjob", "ready-github"],
)
def test_common_labels_are_on_every_object_and_its_pods(values):
    common = {"team": "payments", "cost-center": "qa"}
    objs = render({**HTTP, **values, "commonLabels": common, "podLabels": {"team": "payments-runner"}})
    assert len(objs) >= 5
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels["cost-center"] == "qa" and labels["team"] == "payments", (o["kind"], labels)
        assert labels["app.kubernetes.io/instance"] == "hello"
    for o in find(objs, "Job") + find(objs, "CronJob"):
        if o["kind"] == "CronJob":
            assert o["spec"]["jobTemplate"]["metadata"]["labels"]["team"] == "payments"
        pod_labels = _pod(o)["metadata"]["labels"]
        # podLabels win over commonLabels on the pod; the chart's own labels stay
        assert pod_labels["team"] == "payments-runner" and pod_labels["cost-center"] == "qa"
        assert pod_labels["app.kubernetes.io/component"] == "runner"
        assert pod_labels["iter8.tools/revision"] == "1"


# ---------------------------------------------------------------- helm test


def _hooks(objs):
    return [o for o in objs if (o["metadata"].get("annotations") or {}).get("helm.sh/hook")]


def test_helm_test_pod_asserts_the_verdict_with_the_runner_image():
    objs = render({**HTTP, "image": {"digest": DIGEST}, "imagePullSecrets": [{"name": "regcred"}]}, namespace="team")
    (pod,) = _hooks(objs)
    assert pod["kind"] == "Pod" and pod["metadata"]["name"] == "hello-iter8-test"
    assert pod["metadata"]["namespace"] == "team"
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "hello-iter8-test"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    (c,) = spec["containers"]
    # the runner image itself: its entrypoint is iter8-runner, no shell, no other binary
    assert c["image"] == f"ghcr.io/iter8-rs/iter8-runner@{DIGEST}"
    assert "command" not in c
    assert c["args"] == ["assert", "--release", "hello", "--namespace", "team", "--condition", "completed,nofailure,slos"]
    # restricted, as the runner
    runner = one(objs, "Job")["spec"]["template"]["spec"]
    assert spec["securityContext"] == runner["securityContext"]
    assert c["securityContext"] == runner["containers"][0]["securityContext"]


def test_helm_test_reads_only_the_release_secret_as_its_own_account():
    objs = render({**HTTP, "serviceAccount": {"create": False, "name": "platform"}})
    sa = one(objs, "ServiceAccount", "hello-iter8-test")
    assert sa["metadata"]["labels"]["app.kubernetes.io/component"] == "test"
    role = one(objs, "Role", "hello-iter8-test")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hello"], "verbs": ["get"]}]
    binding = one(objs, "RoleBinding", "hello-iter8-test")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hello-iter8-test"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hello-iter8-test", "namespace": "default"}]
    # the RBAC objects are ordinary release objects (removed by helm uninstall), not hooks
    assert all(o["kind"] == "Pod" for o in _hooks(objs))


def test_helm_test_conditions_timeout_and_switch():
    values = {**HTTP, "test": {"conditions": ["completed", "comparisons"], "timeout": "2m"}}
    (pod,) = _hooks(render(values))
    assert pod["spec"]["containers"][0]["args"][-4:] == ["--condition", "completed,comparisons", "--timeout", "2m"]
    objs = render({**HTTP, "test": {"enabled": False}})
    assert not _hooks(objs)
    assert not [o for o in objs if o["metadata"]["name"] == "hello-iter8-test"]
    # runner=none: nothing runs, so there is no verdict to test
    assert [o["kind"] for o in render({**HTTP, "runner": "none"})] == ["Secret"]


def test_long_release_names_keep_the_test_names_within_limits():
    objs = render(HTTP, name="r" * 53)
    (pod,) = _hooks(objs)
    assert pod["metadata"]["name"] == "r" * 52 + "-iter8-test"
    assert len(pod["metadata"]["name"]) <= 63


@pytest.mark.parametrize(
    "values, where",
    [
        ({"test": {"conditions": ["complete"]}}, "/test/conditions/0"),
        ({"test": {"conditions": []}}, "/test/conditions"),
        ({"test": {"timeout": "2 minutes"}}, "/test/timeout"),
        ({"test": {"enable": True}}, "additional properties 'enable' not allowed"),
    ],
)
def test_helm_test_values_are_checked_by_the_schema(values, where):
    err = render_error({**HTTP, **values})
    assert where in err, err


# ---------------------------------------------------------------- what policy scanners ask

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"


def _pod_specs(objs):
    """Every pod spec of the release: the runner's (Job or CronJob) and the helm test's."""
    specs = [_pod(o)["spec"] for o in find(objs, "Job") + find(objs, "CronJob")]
    return specs + [o["spec"] for o in find(objs, "Pod")]


@pytest.mark.parametrize("runner", ["job", "cronjob"])
def test_no_automatic_token_but_an_explicit_projected_expiring_one(runner):
    objs = render({**HTTP, "runner": runner, "cronjobSchedule": "*/5 * * * *"})
    for sa in find(objs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False, sa["metadata"]["name"]
    specs = _pod_specs(objs)
    assert len(specs) == 2  # the runner's and the test's
    for spec in specs:
        assert spec["automountServiceAccountToken"] is False
        (vol,) = [v for v in spec["volumes"] if v["name"] == "kube-api-access"]
        sources = vol["projected"]["sources"]
        assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
        assert sources[1] == {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
        assert sources[2] == {
            "downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}
        }
        (c,) = spec["containers"]
        assert {"name": "kube-api-access", "mountPath": SA_PATH, "readOnly": True} in c["volumeMounts"]
    # an existing account: its automount setting is the owner's, the pods still opt out
    objs = render({**HTTP, "serviceAccount": {"create": False, "name": "platform", "tokenExpirationSeconds": 600}})
    for spec in _pod_specs(objs):
        assert spec["automountServiceAccountToken"] is False
        (vol,) = [v for v in spec["volumes"] if v["name"] == "kube-api-access"]
        assert vol["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 600


@pytest.mark.parametrize(
    "values, where",
    [
        ({"serviceAccount": {"tokenExpirationSeconds": 60}}, "/serviceAccount/tokenExpirationSeconds"),
        ({"serviceAccount": {"tokenExpirationSeconds": "1h"}}, "/serviceAccount/tokenExpirationSeconds"),
        ({"secretMounts": [{"name": "kube-api-access", "secretName": "s", "mountPath": "/s"}]}, "/secretMounts/0/name"),
        ({"networkPolicy": {"egress": [{"to": [], "port": 443}]}}, "additional properties 'port' not allowed"),
        ({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled"),
    ],
)
def test_policy_values_are_checked_by_the_schema(values, where):
    err = render_error({**HTTP, **values})
    assert where in err, err


def test_a_secret_mount_cannot_hide_the_token():
    err = render_error({**HTTP, "secretMounts": [{"name": "a", "secretName": "s", "mountPath": SA_PATH}]})
    assert f"secretMounts[0].mountPath: {SA_PATH} is already a mount of the runner" in err, err


def test_network_policy_no_ingress_and_all_egress_by_default():
    objs = render(HTTP)
    np = one(objs, "NetworkPolicy", "hello-iter8")
    assert np["metadata"]["labels"]["app.kubernetes.io/instance"] == "hello"
    spec = np["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "iter8", "app.kubernetes.io/instance": "hello"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in spec  # Ingress listed without rules: nothing may connect
    assert spec["egress"] == [{}]  # every destination
    # the selector picks the runner's and the test's pods
    for pod in [_pod(one(objs, "Job")), one(objs, "Pod")]:
        labels = pod["metadata"]["labels"]
        assert all(labels[k] == v for k, v in spec["podSelector"]["matchLabels"].items())


def test_network_policy_restricted_egress_keeps_dns_unless_told():
    api = [{"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}]
    dns = {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    spec = one(render({**HTTP, "networkPolicy": {"egress": api}}), "NetworkPolicy")["spec"]
    assert spec["egress"] == [dns, *api]
    spec = one(render({**HTTP, "networkPolicy": {"egress": api, "allowDNS": False}}), "NetworkPolicy")["spec"]
    assert spec["egress"] == api
    assert not find(render({**HTTP, "networkPolicy": {"enabled": False}}), "NetworkPolicy")
    assert not find(render({**HTTP, "runner": "none"}), "NetworkPolicy")


# ---------------------------------------------------------------- Chart.yaml for Artifact Hub


def test_chart_metadata_for_artifact_hub_follows_the_chart():
    import tomllib

    import yaml

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cargo = tomllib.loads((CHART.parents[1] / "Cargo.toml").read_text())
    assert chart["maintainers"] and all(m["name"] for m in chart["maintainers"])
    # the icon is a file of this repository, at the URL's path on its main branch
    prefix = "https://raw.githubusercontent.com/iter8-rs/iter8/main/"
    assert chart["icon"].startswith(prefix)
    assert (CHART.parents[1] / chart["icon"][len(prefix):]).is_file()
    a = chart["annotations"]
    assert a["artifacthub.io/license"] == cargo["workspace"]["package"]["license"]
    (image,) = yaml.safe_load(a["artifacthub.io/images"])
    assert image["image"] == f"{values['image']['repository']}:{chart['appVersion']}"
    assert image["platforms"] == ["linux/amd64", "linux/arm64"]  # what the release workflow builds
    changes = yaml.safe_load(a["artifacthub.io/changes"])
    assert changes and {c["kind"] for c in changes} <= {"added", "changed", "deprecated", "removed", "fixed", "security"}
    links = yaml.safe_load(a["artifacthub.io/links"])
    assert all(link["url"].startswith("https://") for link in links)
    # the README Artifact Hub shows is the generated one (scripts/chart-docs --check in make lint)
    readme = (CHART / "README.md").read_text()
    assert "helm test" in readme and "| serviceAccount.create | bool | `true` |" in readme


def test_chart_readme_is_what_helm_docs_generates():
    """charts/iter8/README.md is generated from values.yaml (scripts/chart-docs); a values
    change without `scripts/chart-docs` fails here as in `make lint`."""
    import subprocess

    p = subprocess.run(["bash", str(CHART.parents[1] / "scripts" / "chart-docs"), "--check"], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
