"""Chart tests of distributed load (distributedLoad.pods): an Indexed Job whose pods share
the load, with the same least-privilege Role."""

from __future__ import annotations

import pytest

from chartlib import HelmError, find, one, render, set_values

HTTP = {"tasks": ["http"], "http": {"url": "http://127.0.0.1:8080/get", "connections": 6}}
CHART_ENV = {"ITER8_LOAD_WORKERS", "ITER8_LOAD_WORKERS_TIMEOUT", "ITER8_JOB_NAME"}


def render_error(values) -> str:
    with pytest.raises(HelmError) as e:
        render(values)
    return str(e.value)


def env(pod_spec) -> dict:
    return {e["name"]: e for e in pod_spec["containers"][0]["env"]}


def test_one_pod_is_todays_job():
    for values in (HTTP, {**HTTP, "distributedLoad": {"pods": 1}}):
        job = one(render(values), "Job")["spec"]
        assert "completionMode" not in job and "completions" not in job and "parallelism" not in job
        assert not CHART_ENV & env(job["template"]["spec"]).keys()


def test_pods_make_an_indexed_job_whose_pods_know_the_run():
    job = one(render({**HTTP, "distributedLoad": {"pods": 3, "timeout": "90s"}}), "Job")["spec"]
    assert (job["completionMode"], job["completions"], job["parallelism"]) == ("Indexed", 3, 3)
    assert job["backoffLimit"] == 0, "one failing pod fails the Job (and so the experiment)"
    e = env(job["template"]["spec"])
    assert e["ITER8_LOAD_WORKERS"]["value"] == "3"
    assert e["ITER8_LOAD_WORKERS_TIMEOUT"]["value"] == "90s"
    # The run is the Job: a CronJob loop is a new Job, so its records are new.
    assert e["ITER8_JOB_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}
    # JOB_COMPLETION_INDEX comes from the Job controller, not from the chart.
    assert "JOB_COMPLETION_INDEX" not in e


def test_cronjob_loops_are_indexed_jobs_too_and_set_values_work():
    values = set_values(
        "tasks={http}", "http.url=http://x/", "http.connections=8", "runner=cronjob",
        "cronjobSchedule=*/5 * * * *", "distributedLoad.pods=4", "distributedLoad.timeout=300",
    )
    cj = one(render(values), "CronJob")["spec"]["jobTemplate"]["spec"]
    assert (cj["completionMode"], cj["completions"], cj["parallelism"]) == ("Indexed", 4, 4)
    # a number of seconds becomes a Go duration for the runner
    assert env(cj["template"]["spec"])["ITER8_LOAD_WORKERS_TIMEOUT"]["value"] == "300s"


def test_the_role_stays_the_release_secret_alone():
    one_pod = one(render(HTTP), "Role", "hello-iter8")["rules"]
    three = one(render({**HTTP, "distributedLoad": {"pods": 3}}), "Role", "hello-iter8")["rules"]
    assert three == one_pod == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["hello"], "verbs": ["get", "patch"]}
    ]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"tasks": ["assess"], "assess": {"SLOs": {"upper": {"x/y": 1}}}, "distributedLoad": {"pods": 2}},
         "distributedLoad.pods: 2 pods share the load of http and grpc tasks, and tasks has neither"),
        ({"tasks": ["http"], "http": {"url": "http://x/"}, "distributedLoad": {"pods": 5}},
         "http.connections: 4 connections cannot be shared by 5 pods (each pod needs at least one); set http.connections to 5 or more"),
        ({"tasks": ["grpc"], "grpc": {"host": "h:1", "call": "a.B/C", "concurrency": 2}, "distributedLoad": {"pods": 3}},
         "grpc.concurrency: 2 concurrent calls cannot be shared by 3 pods"),
        ({**HTTP, "distributedLoad": {"pods": 2}, "secretEnv": [{"name": "ITER8_JOB_NAME", "secretName": "s", "key": "k"}]},
         "secretEnv[0].name: ITER8_JOB_NAME is set by the chart for the runner"),
    ],
)
def test_bad_combinations_fail_at_install_naming_the_value(values, message):
    err = render_error(values)
    assert message in err, err


@pytest.mark.parametrize(
    "values, path",
    [
        ({**HTTP, "distributedLoad": {"pods": 0}}, "/distributedLoad/pods"),
        ({**HTTP, "distributedLoad": {"pods": 51}}, "/distributedLoad/pods"),
        ({**HTTP, "distributedLoad": {"pods": "three"}}, "/distributedLoad/pods"),
        ({**HTTP, "distributedLoad": {"timeout": "5 minutes"}}, "/distributedLoad/timeout"),
        ({**HTTP, "distributedLoad": {"replicas": 3}}, "additional properties 'replicas' not allowed"),
    ],
)
def test_schema_rejects_bad_values(values, path):
    err = render_error(values)
    assert path in err, err


def test_runner_none_renders_no_job_for_any_pods():
    objs = render({**HTTP, "runner": "none", "distributedLoad": {"pods": 3}})
    assert not find(objs, "Job") and not find(objs, "CronJob")
