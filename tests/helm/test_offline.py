"""scripts/helm without a cluster: template, lint, values merging, errors and exit codes.

Expected values are what the helm binary gives for the same command line (helm's
values.Options.MergeValues: -f files in order, then --set-json, --set, --set-string,
--set-file, each parsed by strvals into the values accumulated so far).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from conftest import BROKEN, ROOT, SAMPLE, TESTDATA, Helm, rendered_values


def template(helm: Helm, *args: str, stdin: str | None = None) -> dict:
    r = helm("template", "rel", str(SAMPLE), *args, stdin=stdin)
    assert r.rc == 0, str(r)
    return rendered_values(r.out)


def test_template_renders_every_object_with_release_name_and_namespace(helm: Helm) -> None:
    r = helm("template", "demo", str(SAMPLE), "-n", "team-a")
    assert r.rc == 0, str(r)
    docs = [d for d in yaml.safe_load_all(r.out) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["Job", "Role", "RoleBinding", "Secret", "ServiceAccount"]
    job = next(d for d in docs if d["kind"] == "Job")
    assert job["metadata"]["name"] == "demo-job-1"
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["subjects"][0]["namespace"] == "team-a"
    # helm's install order: ServiceAccount, Secret, Role, RoleBinding, Job.
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Secret", "Role", "RoleBinding", "Job"]
    assert r.out.startswith("---\n# Source: sample/templates/serviceaccount.yaml\n")


def test_template_prints_hooks_after_the_manifest_in_install_order(helm: Helm) -> None:
    r = helm("template", "r", str(TESTDATA / "hooks"))
    assert r.rc == 0, str(r)
    sources = [line for line in r.out.splitlines() if line.startswith("# Source: ")]
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(r.out) if d]
    assert sources == ["# Source: hooks/templates/configmap.yaml"] + ["# Source: hooks/templates/hooks.yaml"] * 2
    assert names == ["r-plain", "r-pre", "r-post"]  # ConfigMap hooks before Job hooks
    r = helm("template", "r", str(TESTDATA / "hooks"), "--no-hooks")
    assert r.rc == 0 and [d["metadata"]["name"] for d in yaml.safe_load_all(r.out) if d] == ["r-plain"]


def test_template_one_argument_uses_release_name(helm: Helm) -> None:
    r = helm("template", str(SAMPLE))
    assert r.rc == 0, str(r)
    assert "name: release-name-job-1" in r.out


def test_set_slash_in_key_and_list_braces(helm: Helm) -> None:
    values = template(helm, "--set", "extra.a.b/c=1", "--set", "list={x,y}")
    assert values["extra"] == {"a": {"b/c": 1}}
    assert values["list"] == ["x", "y"]


def test_set_types_and_escapes(helm: Helm) -> None:
    values = template(
        helm,
        "--set", r"extra.int=42,extra.bool=true,extra.null=null,extra.float=1.5,extra.comma=a\,b",
        "--set", r"extra.dotted\.key=v",
        "--set-string", "extra.str=42",
    )
    extra = values["extra"]
    assert extra["int"] == 42 and extra["bool"] is True and extra["float"] == "1.5"
    assert "null" in extra and extra["null"] is None
    assert extra["comma"] == "a,b"
    assert extra["dotted.key"] == "v"
    assert extra["str"] == "42"


def test_values_files_layer_later_wins_and_stdin(helm: Helm, tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text("message: one\nextra:\n  keep: 1\n  over: one\n  nested: {a: 1, b: 1}\n")
    two = tmp_path / "two.yaml"
    two.write_text("extra:\n  over: two\n  nested: {b: 2}\n")
    values = template(helm, "-f", str(one), "--values", str(two), "-f", "-", stdin="extra:\n  fromstdin: true\n")
    assert values["message"] == "one"
    assert values["extra"] == {"keep": 1, "over": "two", "nested": {"a": 1, "b": 2}, "fromstdin": True}


def test_set_file_reads_the_file(helm: Helm, tmp_path: Path) -> None:
    f = tmp_path / "msg.txt"
    f.write_text("line one\nline two\n")
    values = template(helm, "--set-file", f"extra.text={f}")
    assert values["extra"]["text"] == "line one\nline two\n"


def test_set_json_both_forms(helm: Helm) -> None:
    values = template(helm, "--set-json", 'extra.obj={"k":[1,{"x":null}]}', "--set-json", '{"extra":{"top":true}}')
    assert values["extra"] == {"obj": {"k": [1, {"x": None}]}, "top": True}


def test_merge_order_is_helms_not_the_command_lines(helm: Helm, tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("extra:\n  a: file\n  b: file\n  c: file\n  d: file\n")
    content = tmp_path / "content.txt"
    content.write_text("from-set-file")
    # Flags given in reverse order: helm still applies -f, --set-json, --set, --set-string, --set-file.
    values = template(
        helm,
        "--set-file", f"extra.d={content}",
        "--set-string", "extra.c=string,extra.d=string",
        "--set", "extra.b=7,extra.c=set,extra.d=set",
        "--set-json", 'extra.a="json",extra.b="json",extra.c="json",extra.d="json"',
        "-f", str(f),
    )
    assert values["extra"] == {"a": "json", "b": 7, "c": "string", "d": "from-set-file"}


def test_set_edits_lists_and_maps_from_values_files(helm: Helm, tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text('extra:\n  l: [p, q, r]\n  m: [{a: 1}]\n  f: 1.5\n  s: "123"\n  e: {}\n  el: []\n')
    values = template(
        helm, "-f", str(f),
        "--set", "extra.l[1]=z", "--set", "extra.m[0].b=2", "--set", "extra.e.x=1", "--set", "extra.el[1]=w",
    )
    assert values["extra"] == {
        "l": ["p", "z", "r"],  # strvals edits the list the file gave, in place
        "m": [{"a": 1, "b": 2}],
        "f": 1.5,  # untouched values keep their types
        "s": "123",
        "e": {"x": 1},
        "el": [None, "w"],
    }
    untouched = template(helm, "-f", str(f), "--set", "extra.other=1")
    assert untouched["extra"]["e"] == {} and untouched["extra"]["el"] == []


def test_set_into_a_scalar_from_a_values_file_fails_like_helm(helm: Helm, tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("extra:\n  s: text\n")
    r = helm("template", "rel", str(SAMPLE), "-f", str(f), "--set", "extra.s.x=1")
    assert r.rc == 1
    assert r.err == (
        "Error: failed parsing --set data: unable to parse key: interface conversion: "
        "interface {} is string, not map[string]interface {}\n"
    )


def test_set_literal_and_set_json_into_values_files(helm: Helm, tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("extra:\n  l: [p]\n  keep: {k: 1.5, t: true, z: null}\n")
    values = template(
        helm, "-f", str(f),
        "--set-literal", "extra.lit=a,b=c", "--set-literal", "extra.l[2]={x,y}",
        "--set-json", 'extra.keep.j={"x":[1]}',
    )
    assert values["extra"] == {
        "l": ["p", None, "{x,y}"],
        "lit": "a,b=c",
        "keep": {"k": 1.5, "t": True, "z": None, "j": {"x": [1]}},
    }
    r = helm("template", "rel", str(SAMPLE), "-f", str(f), "--set", "extra.keep.t.x=1")
    assert (r.rc, r.err) == (
        1,
        "Error: failed parsing --set data: unable to parse key: interface conversion: "
        "interface {} is bool, not map[string]interface {}\n",
    )


def test_bad_set_expression(helm: Helm) -> None:
    r = helm("template", "rel", str(SAMPLE), "--set", "extra")
    assert r.rc == 1
    assert r.err == 'Error: failed parsing --set data: key "extra" has no value\n'
    assert r.out == ""


def test_set_file_missing_file(helm: Helm) -> None:
    r = helm("template", "rel", str(SAMPLE), "--set-file", "extra.x=/nonexistent/file")
    assert r.rc == 1
    assert r.err == "Error: failed parsing --set-file data: open /nonexistent/file: no such file or directory\n"


def test_lint_strict_clean(helm: Helm) -> None:
    r = helm("lint", str(SAMPLE), "--strict")
    assert r.rc == 0, str(r)
    assert r.out == f"==> Linting {SAMPLE}\n\n1 chart(s) linted, 0 chart(s) failed\n"


def test_lint_broken_chart(helm: Helm) -> None:
    r = helm("lint", str(BROKEN), "--strict")
    assert r.rc == 1
    assert "[ERROR] templates/: parse error at (broken/templates/configmap.yaml:7): unclosed action" in r.out
    assert r.out.startswith(f"==> Linting {BROKEN}\n")
    assert r.err == "Error: 1 chart(s) linted, 1 chart(s) failed\n"


def test_lint_strict_schema_violation(helm: Helm) -> None:
    r = helm("lint", str(SAMPLE), "--strict", "--set", "exitCode=abc")
    assert r.rc == 1
    assert "[ERROR] values.yaml: - at '/exitCode': got string, want integer" in r.out
    assert r.err == "Error: 1 chart(s) linted, 1 chart(s) failed\n"


def test_schema_violation_rejected_with_the_schema_message(helm: Helm) -> None:
    r = helm("template", "rel", str(SAMPLE), "--set", "exitCode=abc")
    assert r.rc == 1
    assert r.out == ""
    assert r.err.startswith(
        "Error: values don't meet the specifications of the schema(s) in the following chart(s):\n"
        "sample:\n- at '/exitCode': got string, want integer\n"
    )
    r = helm("template", "rel", str(SAMPLE), "--set", "exitCode=300")
    assert r.rc == 1 and "/exitCode" in r.err and "300" in r.err


def test_missing_chart(helm: Helm) -> None:
    r = helm("template", "rel", "./no-such-chart")
    assert (r.rc, r.out, r.err) == (1, "", 'Error: path "./no-such-chart" not found\n')
    r = helm("install", "rel", "./no-such-chart")
    assert (r.rc, r.err) == (1, 'Error: INSTALLATION FAILED: path "./no-such-chart" not found\n')
    r = helm("upgrade", "rel", "/no/such/chart")
    assert (r.rc, r.err) == (1, 'Error: path "/no/such/chart" not found\n')


def test_argument_and_flag_errors(helm: Helm) -> None:
    r = helm("template", "rel", str(SAMPLE), "--bogus")
    assert (r.rc, r.err) == (1, "Error: unknown flag: --bogus\n")
    r = helm("status")
    assert r.rc == 1 and r.err.startswith('Error: "helm status" requires 1 argument\n\nUsage:  helm status RELEASE_NAME')
    r = helm("install", "only-a-name")
    # (helm v4 reports it as an installation failure)
    assert (r.rc, r.err) == (1, "Error: INSTALLATION FAILED: must either provide a name or specify --generate-name\n")
    r = helm("install", "rel", str(SAMPLE), "--timeout", "5x")
    # (the rest is Go's time.ParseDuration, whose wording depends on the Go release)
    assert r.rc == 1 and r.err.startswith('Error: invalid argument "5x" for "--timeout" flag: time: '), str(r)
    assert r.err.endswith(' "5x"\n'), str(r)
    r = helm("template", "Bad_Name", str(SAMPLE))
    # helm v4 logs the failed check, then reports it
    last = r.err.strip().splitlines()[-1]
    assert r.rc == 1 and last.startswith("Error: "), str(r)
    assert 'release name "Bad_Name": invalid release name, must match regex' in last


def test_unreachable_cluster_is_an_installation_failure(helm: Helm) -> None:
    r = helm("install", "rel", str(SAMPLE))
    assert r.rc == 1
    # helm v4 logs the failed check, then reports the failure
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("Error: INSTALLATION FAILED: "), r.err
    assert "kubernetes cluster unreachable" in last


def test_version(helm: Helm) -> None:
    r = helm("version", "--short")
    assert r.rc == 0 and r.out.startswith("v4."), str(r)
    r = helm("version")
    assert r.rc == 0 and r.out.startswith('version.BuildInfo{Version:"v4.'), str(r)


def test_helm_path_gives_the_pinned_helms_built_from_source() -> None:
    # scripts/helm-path (the Makefile's HELM and HELM3): helm v4, or v3 with `3`, as built by
    # scripts/tools from tools/go/helm4 and tools/go/helm3 (pinned versions, cached by version).
    for major in ("4", "3"):
        got = subprocess.run(
            ["bash", str(ROOT / "scripts/helm-path"), major], capture_output=True, text=True, check=True
        )
        path = got.stdout.strip()
        assert f"/helm{major}-v{major}." in path and path.endswith("/helm"), path
        v = subprocess.run([path, "version", "--short"], capture_output=True, text=True, check=True)
        assert v.stdout.startswith(f"v{major}."), v.stdout
