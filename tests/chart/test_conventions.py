"""Chart tests, the conventions users know from other charts (helm create, cert-manager,
ingress-nginx): pod and CronJob settings, ServiceAccount and labels, `global`, and the values
policy scanners ask for. Rendered with Helm's engine, as test_chart.py."""

from __future__ import annotations

import pytest

from chartlib import find, one, render

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
    assert not find(objs, "ServiceAccount")
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
