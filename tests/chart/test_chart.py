"""Chart tests: render charts/iter8 with the real helm binary and assert on the objects."""

from __future__ import annotations

import re

import pytest
import yaml

from chartlib import (
    HelmError,
    CHART,
    ci_values_files,
    experiment,
    find,
    lint,
    one,
    render,
    render_raw,
    set_values,
    snapshot_path,
    snapshot_text,
)

# Iter8 v0.15's documented quick start, flag for flag.
ITER8_V015_FLAGS = [
    "tasks={ready,http,assess}",
    "ready.deploy=httpbin",
    "ready.service=httpbin",
    "ready.timeout=60s",
    "http.url=http://httpbin.default/get",
    "assess.SLOs.upper.http/latency-mean=50",
    "assess.SLOs.upper.http/error-count=0",
    "runner=job",
]

HTTP = {"tasks": ["http"], "http": {"url": "http://127.0.0.1:8080/get"}}


def render_error(values) -> str:
    with pytest.raises(HelmError) as e:
        render(values)
    return str(e.value)


# ---------------------------------------------------------------- Iter8 v0.15 values


def test_iter8_v015_values_render_the_expected_experiment():
    objs = render(set_values(*ITER8_V015_FLAGS))
    assert experiment(objs) == {
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": [
            {
                "task": "ready",
                "with": {
                    "name": "httpbin",
                    "namespace": "default",
                    "resource": "services",
                    "timeout": "60s",
                    "version": "v1",
                },
            },
            {
                "task": "ready",
                "with": {
                    "condition": "Available",
                    "group": "apps",
                    "name": "httpbin",
                    "namespace": "default",
                    "resource": "deployments",
                    "timeout": "60s",
                    "version": "v1",
                },
            },
            {"task": "http", "with": {"url": "http://httpbin.default/get"}},
            {
                "task": "assess",
                "with": {
                    "SLOs": {
                        "upper": [
                            {"metric": "http/error-count", "limit": 0},
                            {"metric": "http/latency-mean", "limit": 50},
                        ]
                    }
                },
            },
        ],
    }
    assert one(objs, "Job")["metadata"]["name"] == "hello-1-job"


def test_fractional_numbers_from_set_become_numbers():
    objs = render(
        set_values(
            "tasks={http,assess}",
            "http.url=http://x/",
            "http.qps=2.5",
            "assess.SLOs.lower.http/request-count=0.5",
        )
    )
    spec = experiment(objs)["spec"]
    assert spec[0]["with"]["qps"] == 2.5
    assert spec[1]["with"]["SLOs"]["lower"] == [{"metric": "http/request-count", "limit": 0.5}]


def test_relative_slos_regression_and_compare_from_set():
    objs = render(
        set_values(
            "tasks={http,assess}",
            "http.url=http://x/",
            "assess.baseline=v1",
            "assess.relativeSLOs.upper.http/latency-p99=10",
            "assess.relativeSLOs.lower.http/request-count=2.5",
            "assess.regression.upper.http/latency-mean=20",
            "assess.compare.metrics={http/latency,http/error-rate}",
            "assess.compare.alpha=0.01",
            "assess.compare.minSamples=50",
        )
    )
    assess = experiment(objs)["spec"][1]
    assert assess == {
        "task": "assess",
        "with": {
            "baseline": "v1",
            "relativeSLOs": {"upper": {"http/latency-p99": 10}, "lower": {"http/request-count": 2.5}},
            "regression": {"upper": {"http/latency-mean": 20}},
            "compare": {"metrics": ["http/latency", "http/error-rate"], "alpha": 0.01, "minSamples": 50},
        },
    }
    # --set-string gives strings: they become numbers; an index names the baseline too.
    objs = render(
        set_values("tasks={http,assess}", "http.url=http://x/", "assess.baseline=0")
        | {"assess": {"baseline": 0, "regression": {"upper": {"http/latency-mean": "12.5"}}}}
    )
    assert experiment(objs)["spec"][1]["with"] == {"baseline": 0, "regression": {"upper": {"http/latency-mean": 12.5}}}


def test_notes_name_the_comparison_gate_and_the_pushgateway():
    values = {**HTTP, "tasks": ["http", "assess"], "assess": {"compare": {"metrics": ["http/latency"]}},
              "metrics": {"pushgateway": {"url": "http://pg:9091"}}}
    notes = render_raw(values, name="exp", namespace="team")["iter8/templates/NOTES.txt"]
    assert "iter8 assert --release exp -n team -c comparisons --timeout 120s" in notes, notes
    assert "pushes the verdict metrics to http://pg:9091 (job=iter8, namespace=team, release=exp)" in notes, notes
    plain = render_raw(HTTP, name="exp", namespace="team")["iter8/templates/NOTES.txt"]
    assert "-c comparisons" not in plain and "Pushgateway" not in plain and "pushes" not in plain


def test_pushgateway_url_reaches_the_runner_env():
    def env(objs):
        c = one(objs, "Job")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in c["env"]}

    assert "ITER8_PUSHGATEWAY_URL" not in env(render(HTTP))
    objs = render({**HTTP, "metrics": {"pushgateway": {"url": "http://pushgateway.monitoring:9091"}}})
    assert env(objs)["ITER8_PUSHGATEWAY_URL"] == "http://pushgateway.monitoring:9091"


def test_strict_reaches_the_runner_env():
    def env(objs):
        c = one(objs, "Job")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in c["env"]}

    assert "ITER8_STRICT" not in env(render(HTTP))
    assert env(render({**HTTP, "strict": True}))["ITER8_STRICT"] == "true"
    assert "strict" in render_error({**HTTP, "strict": "yes"})


def test_ready_shortcuts_for_knative_and_kserve():
    objs = render(set_values("tasks={ready}", "ready.ksvc=hello", "ready.isvc=model", "ready.namespace=ml"))
    withs = [t["with"] for t in experiment(objs)["spec"]]
    assert withs == [
        {"group": "serving.knative.dev", "version": "v1", "resource": "services", "name": "hello", "condition": "Ready", "namespace": "ml"},
        {"group": "serving.kserve.io", "version": "v1beta1", "resource": "inferenceservices", "name": "model", "condition": "Ready", "namespace": "ml"},
    ]


def test_generic_ready_target_and_task_condition():
    values = {
        "tasks": ["ready", "http", "notify"],
        "ready": {"version": "v1", "resource": "configmaps", "name": "cfg", "timeout": 5},
        "http": {"url": "http://x/", "numRequests": 10},
        "notify": {"url": "http://hook/", "if": "SLOs()", "softFailure": True},
    }
    spec = experiment(render(values))["spec"]
    assert spec[0] == {"task": "ready", "with": {"version": "v1", "resource": "configmaps", "name": "cfg", "namespace": "default", "timeout": "5"}}
    assert spec[2] == {"task": "notify", "if": "SLOs()", "with": {"url": "http://hook/", "softFailure": True}}


def test_slack_shortcut_and_grpc_urls():
    objs = render(
        set_values(
            "tasks={grpc,slack}",
            "grpc.host=routeguide.default:50051",
            "grpc.call=routeguide.RouteGuide.GetFeature",
            "grpc.protoURL=https://example.com/route_guide.proto",
            "grpc.dataURL=https://example.com/data.json",
            "slack.url=https://hooks.slack.com/services/T/B/X",
        )
    )
    spec = experiment(objs)["spec"]
    assert spec[0]["with"]["protoURL"] == "https://example.com/route_guide.proto"
    assert spec[1] == {"task": "notify", "with": {"slack": {"url": "https://hooks.slack.com/services/T/B/X"}, "softFailure": True}}
    spec = experiment(render({"tasks": ["slack"], "slack": {"urlFile": "/etc/hook", "softFailure": False}}))["spec"]
    assert spec == [{"task": "notify", "with": {"slack": {"urlFile": "/etc/hook"}, "softFailure": False}}]


def test_github_shortcut_renders_a_notify_task_with_the_token_from_a_file_or_env():
    values = set_values(
        "tasks={assess,github}",
        "assess.SLOs.upper.http/error-count=0",
        "github.owner=my-org",
        "github.repo=my-app",
        "github.eventType=iter8-done",
        "github.tokenFile=/var/run/iter8/secrets/github/token",
        "github.if=SLOs()",
    )
    spec = experiment(render(values))["spec"]
    assert spec[1] == {
        "task": "notify",
        "if": "SLOs()",
        "with": {
            "github": {
                "owner": "my-org",
                "repo": "my-app",
                "eventType": "iter8-done",
                "tokenFile": "/var/run/iter8/secrets/github/token",
            },
            "softFailure": True,
        },
    }
    gh = {"owner": "o", "repo": "r", "tokenEnv": "GITHUB_TOKEN", "apiURL": "https://ghe.example.com/api/v3", "softFailure": False}
    spec = experiment(render({"tasks": ["github"], "github": gh}))["spec"]
    assert spec == [
        {
            "task": "notify",
            "with": {
                "github": {"owner": "o", "repo": "r", "tokenEnv": "GITHUB_TOKEN", "apiURL": "https://ghe.example.com/api/v3"},
                "softFailure": False,
            },
        }
    ]


SECRETS = {
    "secretMounts": [
        {"name": "github-token", "secretName": "gh", "mountPath": "/var/run/iter8/secrets/github"},
        {
            "name": "prom",
            "secretName": "prom-auth",
            "mountPath": "/var/run/iter8/secrets/prometheus",
            "items": [{"key": "token", "path": "bearer"}],
            "optional": True,
        },
    ],
    "secretEnv": [{"name": "GITHUB_TOKEN", "secretName": "gh", "key": "token"}],
}


@pytest.mark.parametrize("runner, kind", [("job", "Job"), ("cronjob", "CronJob")])
def test_secret_mounts_are_read_only_secret_volumes_and_env_from_secret_key_ref(runner, kind):
    values = {**HTTP, **SECRETS, "runner": runner, "cronjobSchedule": "*/5 * * * *"}
    obj = one(render(values), kind)
    pod = obj["spec"]["template"]["spec"] if kind == "Job" else obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["github-token"] == {"name": "github-token", "secret": {"secretName": "gh"}}
    assert volumes["prom"] == {
        "name": "prom",
        "secret": {"secretName": "prom-auth", "optional": True, "items": [{"key": "token", "path": "bearer"}]},
    }
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["github-token"] == {"name": "github-token", "mountPath": "/var/run/iter8/secrets/github", "readOnly": True}
    assert mounts["prom"] == {"name": "prom", "mountPath": "/var/run/iter8/secrets/prometheus", "readOnly": True}
    assert mounts["tmp"]["mountPath"] == "/tmp"
    env = {e["name"]: e for e in container["env"]}
    assert env["GITHUB_TOKEN"] == {"name": "GITHUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "gh", "key": "token"}}}
    assert "POD_NAMESPACE" in env and "ITER8_RELEASE" in env


def test_no_secret_values_render_no_extra_volumes_or_env():
    pod = one(render(HTTP), "Job")["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp", "kube-api-access"]
    assert [e["name"] for e in pod["containers"][0]["env"]] == ["POD_NAMESPACE", "POD_NAME", "ITER8_RELEASE", "ITER8_REVISION", "RUST_LOG"]


def test_http_endpoints_pass_through():
    values = {
        "tasks": ["http"],
        "http": {"numRequests": 20, "endpoints": {"v1": {"url": "http://v1/"}, "v2": {"url": "http://v2/", "headers": {"x": "y"}}}},
    }
    spec = experiment(render(values))["spec"]
    assert spec == [{"task": "http", "with": values["http"]}]


# ---------------------------------------------------------------- fail messages


@pytest.mark.parametrize(
    "values, message",
    [
        ({"runner": "deployment", **HTTP}, 'runner: "deployment" is not valid; set runner to job (one loop), cronjob (loops on cronjobSchedule) or none'),
        ({"runner": "cronjob", **HTTP}, "cronjobSchedule: missing; runner=cronjob needs a schedule"),
        ({"tasks": []}, "tasks: empty; list the tasks to run in order"),
        ({}, "tasks: empty"),
        ({"tasks": ["http"]}, "http.url: missing; tasks includes http, so set the URL to load"),
        ({"tasks": ["http"], "http": {"endpoints": {"v1": {"numRequests": 3}}}}, "http.endpoints.v1.url: missing"),
        ({"tasks": ["grpc"], "grpc": {"host": "h:50051"}}, "grpc.call: missing; tasks includes grpc"),
        ({"tasks": ["grpc"], "grpc": {"call": "a.B/C", "endpoints": {"e1": {"call": "a.B/C"}}}}, "grpc.endpoints.e1.host: missing"),
        ({"tasks": ["ready"]}, "ready: no target; tasks includes ready, so set what to wait for"),
        ({"tasks": ["ready"], "ready": {"resource": "configmaps", "name": "x"}}, "ready.version: missing"),
        ({"tasks": ["assess"]}, "assess: nothing to assess; tasks includes assess, so set SLOs"),
        ({"tasks": ["assess"], "assess": {"SLOs": {"upper": {"http/latency-mean": "1.2.3"}}}}, None),
        ({"tasks": ["assess"], "assess": {"regression": {"upper": {"http/latency-mean": "1.2.3"}}}}, None),
        ({"tasks": ["custommetrics"]}, "custommetrics.templates: missing"),
        ({"tasks": ["notify"]}, "notify.url: missing"),
        ({"tasks": ["slack"]}, "slack.url: missing"),
        ({"tasks": ["github"], "github": {"repo": "r", "tokenFile": "/t"}}, "github.owner: missing; tasks includes github"),
        ({"tasks": ["github"], "github": {"owner": "o", "tokenFile": "/t"}}, "github.repo: missing"),
        ({"tasks": ["github"], "github": {"owner": "o", "repo": "r"}}, "github.tokenFile: missing; tasks includes github, so mount the token's Secret with secretMounts"),
        ({"tasks": ["github"], "github": {"owner": "o", "repo": "r", "tokenFile": "/t", "tokenEnv": "T"}}, "github: give exactly one of token, tokenFile, tokenEnv"),
        ({"tasks": ["http", "load"], **{"http": HTTP["http"]}}, 'tasks[1]: unknown task "load"; known tasks: ready, http, grpc, custommetrics, assess, notify, slack, github'),
        ({**HTTP, "secretEnv": [{"name": "RUST_LOG", "secretName": "s", "key": "k"}]}, "secretEnv[0].name: RUST_LOG is set by the chart for the runner; choose another variable name"),
        ({**HTTP, "secretEnv": [{"name": "T", "secretName": "s", "key": "k"}, {"name": "T", "secretName": "s2", "key": "k"}]}, "secretEnv[1].name: T is already used by an earlier secretEnv entry"),
        ({**HTTP, "secretMounts": [{"name": "a", "secretName": "s", "mountPath": "/s"}, {"name": "a", "secretName": "t", "mountPath": "/t"}]}, "secretMounts[1].name: a is already used by an earlier secretMounts entry"),
        ({**HTTP, "secretMounts": [{"name": "a", "secretName": "s", "mountPath": "/s"}, {"name": "b", "secretName": "t", "mountPath": "/s/"}]}, "secretMounts[1].mountPath: /s/ is already a mount of the runner"),
        ({**HTTP, "secretMounts": [{"name": "a", "secretName": "s", "mountPath": "/tmp"}]}, "secretMounts[0].mountPath: /tmp is already a mount of the runner"),
    ],
)
def test_fail_messages(values, message):
    err = render_error(values)
    if message is None:  # rejected by the schema: the message names the value
        assert "upper/http~1latency-mean" in err or "http/latency-mean" in err, err
    else:
        assert message in err, err


# ---------------------------------------------------------------- schema


@pytest.mark.parametrize(
    "values, path",
    [
        ({**HTTP, "runer": "job"}, "additional properties 'runer' not allowed"),
        ({**HTTP, "image": {"repo": "x"}}, "/image"),
        ({**HTTP, "ready": {"deployment": "x"}}, "/ready"),
        ({**HTTP, "assess": {"SLO": {}}}, "/assess"),
        ({**HTTP, "assess": {"SLOs": {"upper": {"m": "fast"}}}}, "/assess/SLOs/upper/m"),
        ({**HTTP, "ttlSecondsAfterFinished": "soon"}, "/ttlSecondsAfterFinished"),
        ({**HTTP, "activeDeadlineSeconds": 0}, "/activeDeadlineSeconds"),
        ({**HTTP, "logLevel": "loud"}, "/logLevel"),
        ({**HTTP, "image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"tasks": "http", "http": HTTP["http"]}, "/tasks"),
        ({"tasks": ["http"], "http": {"url": "http://x/", "numRequests": "many"}}, "/http/numRequests"),
        ({"tasks": ["http"], "http": {"url": "http://x/", "duration": "10 seconds"}}, "/http/duration"),
        ({"tasks": ["http"], "http": {"url": "http://x/", "qps": "fast"}}, "/http/qps"),
        ({"tasks": ["http"], "http": {"url": ["http://x/"]}}, "/http/url"),
        ({**HTTP, "ready": {"timeout": "1 minute"}}, "/ready/timeout"),
        ({"tasks": ["http"], "http": {"url": "http://x/", "numRequest": 10}}, "additional properties 'numRequest' not allowed"),
        ({"tasks": ["http"], "http": {"endpoints": {"v1": {"url": "http://x/", "qps": "max"}}}}, "/http/endpoints/v1/qps"),
        ({"tasks": ["grpc"], "grpc": {"host": "h:1", "call": "a.B/C", "totl": 5}}, "additional properties 'totl' not allowed"),
        ({"tasks": ["grpc"], "grpc": {"host": "h:1", "call": "a.B/C", "concurrency": "lots"}}, "/grpc/concurrency"),
        ({"tasks": ["notify"], "notify": {"url": "http://h/", "softFailure": "yes"}}, "/notify/softFailure"),
        # a token in clear is never accepted: it belongs in a Secret (secretMounts + tokenFile)
        ({"tasks": ["github"], "github": {"owner": "o", "repo": "r", "token": 5}}, "github/token"),
        ({**HTTP, "secretMounts": [{"name": "a", "secretName": "s", "mountPath": "relative/dir"}]}, "/secretMounts/0/mountPath"),
        ({**HTTP, "secretMounts": [{"name": "a", "mountPath": "/s"}]}, "/secretMounts/0"),
        ({**HTTP, "secretMounts": [{"name": "tmp", "secretName": "s", "mountPath": "/s"}]}, "/secretMounts/0/name"),
        ({**HTTP, "secretMounts": [{"name": "a", "secretName": "s", "mountPath": "/s", "readOnly": False}]}, "additional properties 'readOnly' not allowed"),
        ({**HTTP, "secretEnv": [{"name": "T", "secretName": "s"}]}, "/secretEnv/0"),
        ({**HTTP, "secretEnv": [{"name": "BAD-NAME", "secretName": "s", "key": "k"}]}, "/secretEnv/0/name"),
        ({**HTTP, "assess": {"relativeSLOs": {"upper": {"http/latency-p99": -5}}}}, "/assess/relativeSLOs/upper"),
        ({**HTTP, "assess": {"regression": {"uper": {}}}}, "additional properties 'uper' not allowed"),
        ({**HTTP, "assess": {"compare": {"metrics": ["http/latency-p99"]}}}, "/assess/compare/metrics/0"),
        ({**HTTP, "assess": {"compare": {"alpha": 0.05}}}, "/assess/compare"),
        ({**HTTP, "assess": {"baseline": -1}}, "/assess/baseline"),
        ({**HTTP, "metrics": {"pushgateway": {"url": "pushgateway:9091"}}}, "/metrics/pushgateway/url"),
    ],
)
def test_schema_rejects_unknown_keys_and_mistyped_values(values, path):
    err = render_error(values)
    assert "values don't meet the specifications of the schema" in err, err
    assert path in err, err


def test_every_value_is_documented_in_the_schema():
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(defaults) == set(schema["properties"]), set(defaults) ^ set(schema["properties"])
    text = (CHART / "values.yaml").read_text()
    for key in defaults:
        # every top-level key has a comment line right above it
        assert re.search(rf"#[^\n]*\n{re.escape(key)}:", text), f"{key} is not documented in values.yaml"


# ---------------------------------------------------------------- objects


def test_job_name_carries_the_revision_and_runs_once():
    objs = render(HTTP, revision=7)
    job = one(objs, "Job")
    assert job["metadata"]["name"] == "hello-7-job"
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["metadata"]["labels"]["iter8.tools/revision"] == "7"
    assert pod["metadata"]["labels"]["app.kubernetes.io/instance"] == "hello"
    assert not find(objs, "CronJob")


def test_cronjob_name_schedule_and_concurrency():
    objs = render({**HTTP, "runner": "cronjob", "cronjobSchedule": "*/2 * * * *"}, revision=3)
    cj = one(objs, "CronJob")
    assert cj["metadata"]["name"] == "hello-3-cronjob"
    assert cj["spec"]["schedule"] == "*/2 * * * *"
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    jt = cj["spec"]["jobTemplate"]
    assert jt["metadata"]["labels"]["app.kubernetes.io/instance"] == "hello"
    assert jt["spec"]["backoffLimit"] == 0
    assert jt["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert not find(objs, "Job")


def test_long_release_names_are_truncated_to_kubernetes_limits():
    name = "a" * 53  # helm's longest release name
    objs = render({**HTTP, "runner": "cronjob", "cronjobSchedule": "@hourly"}, name=name, revision=12345)
    assert len(one(objs, "CronJob")["metadata"]["name"]) <= 52
    assert one(objs, "CronJob")["metadata"]["name"].endswith("-12345-cronjob")
    objs = render(HTTP, name=name, revision=12345)
    job = one(objs, "Job")["metadata"]["name"]
    assert len(job) <= 63 and job.endswith("-12345-job")
    for o in objs:
        for v in o["metadata"].get("labels", {}).values():
            assert len(v) <= 63


def test_runner_none_renders_only_the_secret():
    objs = render({**HTTP, "runner": "none"})
    assert [o["kind"] for o in objs] == ["Secret"]


def test_secret_holds_the_experiment_with_standard_labels():
    secret = one(render(HTTP, revision=2), "Secret", "hello")
    labels = secret["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "iter8"
    assert labels["app.kubernetes.io/instance"] == "hello"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["helm.sh/chart"] == "iter8-0.1.0"
    assert list(secret["stringData"]) == ["experiment.yaml"]
    assert secret["metadata"]["annotations"]["iter8.tools/revision"] == "2"


def test_role_grants_exactly_the_release_secret():
    objs = render(HTTP)
    role = one(objs, "Role", "hello-iter8")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hello"], "verbs": ["get", "patch"]}
    ]
    assert not find(objs, "Role", "hello-iter8-ready")
    binding = one(objs, "RoleBinding", "hello-iter8")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hello-iter8"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hello-iter8", "namespace": "default"}]
    one(objs, "ServiceAccount", "hello-iter8")
    pod = one(objs, "Job")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "hello-iter8"


def test_ready_role_reads_just_the_named_targets_in_their_namespace():
    objs = render(set_values(*ITER8_V015_FLAGS, "ready.namespace=apps", "ready.isvc=model"))
    role = one(objs, "Role", "hello-iter8-ready")
    assert role["metadata"]["namespace"] == "apps"
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["services"], "resourceNames": ["httpbin"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["httpbin"], "verbs": ["get"]},
        {"apiGroups": ["serving.kserve.io"], "resources": ["inferenceservices"], "resourceNames": ["model"], "verbs": ["get"]},
    ]
    binding = one(objs, "RoleBinding", "hello-iter8-ready")
    assert binding["metadata"]["namespace"] == "apps"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hello-iter8", "namespace": "default"}]
    # the Secret rule is unchanged
    assert one(objs, "Role", "hello-iter8")["rules"][0]["resourceNames"] == ["hello"]


def test_pod_is_restricted_and_runs_the_runner_directly():
    objs = render({**HTTP, "logLevel": "debug"})
    pod = one(objs, "Job")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    (c,) = pod["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert "command" not in c  # the image's entrypoint: /iter8-runner, no shell
    assert c["args"] == ["--namespace", "$(POD_NAMESPACE)", "--release", "$(ITER8_RELEASE)"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["ITER8_RELEASE"]["value"] == "hello"
    assert env["ITER8_REVISION"]["value"] == "1"
    assert env["RUST_LOG"]["value"] == "debug"
    assert c["image"] == "ghcr.io/iter8-rs/iter8-runner:0.1.0"
    assert c["resources"] == {"requests": {"memory": "64Mi", "cpu": "250m"}, "limits": {"memory": "128Mi", "cpu": "500m"}}


def test_scheduling_and_lifetime_values():
    values = {
        **HTTP,
        "image": {"repository": "localhost/iter8-runner", "tag": "dev", "pullPolicy": "Never"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "k", "operator": "Exists"}],
        "affinity": {"nodeAffinity": {}},
        "ttlSecondsAfterFinished": 0,
        "activeDeadlineSeconds": 600,
    }
    job = one(render(values), "Job")
    assert job["spec"]["ttlSecondsAfterFinished"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 600
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert pod["affinity"] == {"nodeAffinity": {}}
    assert pod["containers"][0]["image"] == "localhost/iter8-runner:dev"
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert "ttlSecondsAfterFinished" not in one(render(HTTP), "Job")["spec"]


def test_notes_print_the_next_commands():
    notes = render_raw(HTTP, name="exp", namespace="team")["iter8/templates/NOTES.txt"]
    assert "iter8 assert --release exp -n team -c completed,nofailure,slos --timeout 120s" in notes
    assert "iter8 report --release exp -n team" in notes


# ---------------------------------------------------------------- lint and snapshots


@pytest.mark.parametrize("values_file", ci_values_files(), ids=lambda p: p.name)
def test_lint_strict_is_clean(values_file):
    values = yaml.safe_load(values_file.read_text())
    report = lint(values=values, strict=True)
    assert report["errors"] == [], report
    # severity 1 is INFO (e.g. "icon is recommended"); warnings (2) and errors (3) fail
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_lint_strict_with_default_values_is_clean():
    # helm lint treats `fail` leniently; installing the defaults fails (test_fail_messages)
    report = lint(strict=True)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("values_file", ci_values_files(), ids=lambda p: p.name)
def test_rendered_snapshot_matches_committed(values_file):
    committed = snapshot_path(values_file)
    assert committed.exists(), f"missing {committed}: run make snapshot"
    assert snapshot_text(values_file) == committed.read_text(), (
        f"{committed.name} differs from the chart's rendering: run `make snapshot` and review the diff"
    )


def test_ci_values_cover_every_runner():
    runners = {yaml.safe_load(f.read_text()).get("runner") for f in ci_values_files()}
    assert runners == {"job", "cronjob", "none"}


def test_app_version_is_the_runner_version_and_the_image_default():
    import tomllib

    cargo = tomllib.loads((CHART.parents[1] / "Cargo.toml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == "0.1.0"
    assert chart["appVersion"] == cargo["workspace"]["package"]["version"]
    c = one(render(HTTP), "Job")["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].endswith(":" + chart["appVersion"])
    makefile = (CHART.parents[1] / "Makefile").read_text()
    repo = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]
    assert f"IMAGE_REPO ?= {repo}" in makefile


# ---------------------------------------------------------------- Iter8 v0.15 values (accepted)


def test_iter8_v015_values_from_its_docs_are_accepted_and_explained():
    """Values of Iter8 v0.15's parameters page and tutorials (iter8-tools/docs)."""
    values = set_values(
        "tasks={ready,grpc,assess,slack,github}",
        "iter8Image=iter8/iter8:0.15",
        "majorMinor=v0.15",
        "logLevel=warning",
        "ready.chaosengine=litmus-engine",
        "grpc.host=hello.default:50051",
        "grpc.call=helloworld.Greeter.SayHello",
        "grpc.skipFirst=10",
        "assess.SLOs.upper.grpc/error-rate=0",
        "slack.url=https://hooks.slack.com/services/T/B/X",
        "slack.method=POST",
        "github.owner=my-org",
        "github.repo=my-app",
        "github.token=ghp_secret",
    )
    http = experiment(render(set_values("tasks={http}", "http.url=http://x/", "http.payloadURL=http://p/payload.json")))
    assert http["spec"][0]["with"]["payloadURL"] == "http://p/payload.json"
    notify = experiment(render(set_values("tasks={notify}", "notify.url=http://h/", "notify.payloadTemplateURL=http://t/p.tpl")))
    assert notify["spec"][0]["with"]["payloadTemplateURL"] == "http://t/p.tpl"
    raw = render_raw(values)
    objs = render(values)
    spec = experiment(objs)["spec"]
    assert spec[0]["with"] == {
        "group": "litmuschaos.io",
        "version": "v1alpha1",
        "resource": "chaosengines",
        "name": "litmus-engine",
        "namespace": "default",
    }
    assert spec[1]["with"]["skipFirst"] == 10
    # The token is never in the experiment: a Secret of its own, an env variable, tokenEnv.
    gh = spec[4]["with"]["github"]
    assert gh["tokenEnv"] == "ITER8_GITHUB_TOKEN" and "token" not in gh
    secret = [o for o in find(objs, "Secret") if o["metadata"]["name"] == "hello-github-token"]
    assert secret and secret[0]["stringData"] == {"token": "ghp_secret"}
    assert "ghp_secret" not in yaml.safe_dump(experiment(objs))
    env = {e["name"]: e for e in one(objs, "Job")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RUST_LOG"]["value"] == "warn"
    assert env["ITER8_GITHUB_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hello-github-token", "key": "token"}
    notes_env = env["ITER8_VALUES_NOTES"]["value"]
    notes = next(t for p, t in raw.items() if p.endswith("NOTES.txt"))
    for said in (
        "iter8Image=iter8/iter8:0.15 is ignored",
        "majorMinor=v0.15 is ignored",
        "logLevel=warning is Iter8's name; the runner logs at warn",
        "slack.method=POST is ignored",
        "github.token is a value",
        "secretEnv and github.tokenEnv",
    ):
        assert said in notes, notes
        assert said in notes_env, notes_env
    # The ready Role may read that one ChaosEngine.
    rules = [r for o in find(objs, "Role") for r in o.get("rules", [])]
    assert any(r.get("resources") == ["chaosengines"] and r.get("resourceNames") == ["litmus-engine"] for r in rules), rules


def test_iter8_values_not_given_add_no_notes_env_or_secret():
    objs = render(HTTP)
    env = {e["name"] for e in one(objs, "Job")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "ITER8_VALUES_NOTES" not in env and "ITER8_GITHUB_TOKEN" not in env
    assert all(o["metadata"]["name"] != "hello-github-token" for o in find(objs, "Secret"))


def test_load_stages_pass_through_and_are_checked_by_the_schema():
    stages = [{"duration": "30s", "qps": 200, "ramp": True}, {"duration": "1m", "qps": 200}]
    values = {"tasks": ["http"], "http": {"url": "http://a/", "stages": stages, "endpoints": {"v1": {"stages": stages[1:]}}}}
    assert experiment(render(values))["spec"] == [{"task": "http", "with": values["http"]}]
    grpc = {"host": "h:50051", "call": "a.B/C", "stages": [{"duration": "10s", "rps": 50}]}
    assert experiment(render({"tasks": ["grpc"], "grpc": grpc}))["spec"] == [{"task": "grpc", "with": grpc}]
    for bad in ([{"duration": "1s", "qps": 5, "rate": 1}], [{"qps": 5}], [], [{"duration": "1s", "qps": 5, "ramp": "yes"}]):
        err = render_error({"tasks": ["http"], "http": {"url": "http://a/", "stages": bad}})
        assert "stages" in err, err
