"""helm's command line over Helm v4 as a library (PyPI helm-python-sdk, pinned).

Run through scripts/helm, which creates the virtualenv. Test support, not product: it lets
the tests and the README use `helm` where no helm binary can be installed.

Verbs: install, upgrade (--install), uninstall, template, lint, list, status, history,
get values, version. Values are merged exactly as helm's `values.Options.MergeValues`:
-f files in order (helm's mergeMaps), then --set-json, --set, --set-string, --set-file,
--set-literal, each parsed by Helm's own strvals parser from the C library *into* the values
accumulated so far (see `parse_into`). Errors print `Error: <message>` on stderr, exit 1.

Differences from the helm binary (documented in the README section "helm without a helm
binary"): OpenAPI validation of rendered manifests is off by default (the project's test
API server has no OpenAPI endpoint; HELM_SHIM_OPENAPI_VALIDATION=1 turns it on); only local
chart directories / archives and oci:// references are installable (no chart repositories);
`template` finds hooks by rendering the chart again (see template_hooks); `-o json|yaml` of install/upgrade/status prints
a reduced release object.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from datetime import datetime, timezone
from typing import Any, Callable

import helm_python as helm
import yaml
from helm_python import _native

HELM_VERSION = _native.EXPECTED_HELM_SDK_VERSION


class CLIError(Exception):
    """An error helm prints as `Error: <message>` and exits 1 with."""


# --------------------------------------------------------------------------------------------
# Command line parsing (cobra / pflag conventions: interspersed flags, --f=v, -f v, -fv)
# --------------------------------------------------------------------------------------------

# kind: "str" (one value), "list" (repeatable), "bool" (--x or --x=false),
# "opt" (optional value: bare flag takes the default given in the table, else --x=value).
GLOBAL_FLAGS: dict[str, tuple[str, str, Any]] = {
    "--kubeconfig": ("kubeconfig", "str", None),
    "--kube-context": ("kube_context", "str", None),
    "--kube-token": ("kube_token", "str", None),
    "--kube-apiserver": ("kube_apiserver", "str", None),
    "--kube-ca-file": ("kube_ca_file", "str", None),
    "--kube-insecure-skip-tls-verify": ("kube_insecure", "bool", None),
    "-n": ("namespace", "str", None),
    "--namespace": ("namespace", "str", None),
    "--debug": ("debug", "bool", None),
    "--burst-limit": ("burst_limit", "str", None),
    "--qps": ("qps", "str", None),
    "--kube-as-user": ("kube_as_user", "str", None),
    "--kube-as-group": ("kube_as_groups", "list", None),
    "-h": ("help", "bool", None),
    "--help": ("help", "bool", None),
}

VALUES_FLAGS: dict[str, tuple[str, str, Any]] = {
    "-f": ("values_files", "list", None),
    "--values": ("values_files", "list", None),
    "--set": ("set", "list", None),
    "--set-string": ("set_string", "list", None),
    "--set-file": ("set_file", "list", None),
    "--set-json": ("set_json", "list", None),
    "--set-literal": ("set_literal", "list", None),
}

INSTALL_FLAGS: dict[str, tuple[str, str, Any]] = {
    **VALUES_FLAGS,
    "--create-namespace": ("create_namespace", "bool", None),
    "--wait": ("wait", "opt", "watcher"),
    "--wait-for-jobs": ("wait_for_jobs", "bool", None),
    "--timeout": ("timeout", "str", None),
    "--version": ("chart_version", "str", None),
    "--devel": ("devel", "bool", None),
    "--dry-run": ("dry_run", "opt", "client"),
    "--description": ("description", "str", None),
    "--disable-openapi-validation": ("disable_openapi_validation", "bool", None),
    "--skip-schema-validation": ("skip_schema_validation", "bool", None),
    "--server-side": ("server_side", "opt", "true"),
    "--force-conflicts": ("force_conflicts", "bool", None),
    "--take-ownership": ("take_ownership", "bool", None),
    "--hide-notes": ("hide_notes", "bool", None),
    "--no-hooks": ("disable_hooks", "bool", None),
    "--atomic": ("rollback_on_failure", "bool", None),
    "--rollback-on-failure": ("rollback_on_failure", "bool", None),
    "--skip-crds": ("skip_crds", "bool", None),
    "--labels": ("labels", "list", None),
    "-l": ("labels", "list", None),
    "-o": ("output", "str", None),
    "--output": ("output", "str", None),
}

UPGRADE_FLAGS: dict[str, tuple[str, str, Any]] = {
    **INSTALL_FLAGS,
    "-i": ("install", "bool", None),
    "--install": ("install", "bool", None),
    "--reuse-values": ("reuse_values", "bool", None),
    "--reset-values": ("reset_values", "bool", None),
    "--reset-then-reuse-values": ("reset_then_reuse_values", "bool", None),
    "--cleanup-on-fail": ("cleanup_on_fail", "bool", None),
    "--history-max": ("max_history", "str", None),
}

TEMPLATE_FLAGS: dict[str, tuple[str, str, Any]] = {
    **VALUES_FLAGS,
    "--version": ("chart_version", "str", None),
    "--devel": ("devel", "bool", None),
    "--skip-schema-validation": ("skip_schema_validation", "bool", None),
    "--create-namespace": ("create_namespace", "bool", None),
    "--skip-crds": ("skip_crds", "bool", None),
    "--no-hooks": ("disable_hooks", "bool", None),
    "--description": ("description", "str", None),
}

LINT_FLAGS: dict[str, tuple[str, str, Any]] = {
    **VALUES_FLAGS,
    "--strict": ("strict", "bool", None),
    "--quiet": ("quiet", "bool", None),
    "-q": ("quiet", "bool", None),
    "--with-subcharts": ("with_subcharts", "bool", None),
    "--skip-schema-validation": ("skip_schema_validation", "bool", None),
    "--kube-version": ("kube_version", "str", None),
}

LIST_FLAGS: dict[str, tuple[str, str, Any]] = {
    "-A": ("all_namespaces", "bool", None),
    "--all-namespaces": ("all_namespaces", "bool", None),
    "-a": ("all", "bool", None),
    "--all": ("all", "bool", None),
    "-o": ("output", "str", None),
    "--output": ("output", "str", None),
    "-q": ("short", "bool", None),
    "--short": ("short", "bool", None),
    "--filter": ("filter", "str", None),
    "-f": ("filter", "str", None),
    "-m": ("max", "str", None),
    "--max": ("max", "str", None),
    "--offset": ("offset", "str", None),
    "-l": ("selector", "str", None),
    "--selector": ("selector", "str", None),
    "--no-headers": ("no_headers", "bool", None),
    "-d": ("by_date", "bool", None),
    "--date": ("by_date", "bool", None),
    "-r": ("reverse", "bool", None),
    "--reverse": ("reverse", "bool", None),
    "--deployed": ("deployed", "bool", None),
    "--failed": ("failed", "bool", None),
    "--pending": ("pending", "bool", None),
    "--superseded": ("superseded", "bool", None),
    "--uninstalled": ("uninstalled", "bool", None),
    "--uninstalling": ("uninstalling", "bool", None),
}

UNINSTALL_FLAGS: dict[str, tuple[str, str, Any]] = {
    "--keep-history": ("keep_history", "bool", None),
    "--wait": ("wait", "opt", "watcher"),
    "--timeout": ("timeout", "str", None),
    "--ignore-not-found": ("ignore_not_found", "bool", None),
    "--dry-run": ("dry_run", "bool", None),
    "--no-hooks": ("disable_hooks", "bool", None),
    "--cascade": ("cascade", "str", None),
    "--description": ("description", "str", None),
}

STATUS_FLAGS: dict[str, tuple[str, str, Any]] = {
    "-o": ("output", "str", None),
    "--output": ("output", "str", None),
    "--revision": ("revision", "str", None),
    "--show-desc": ("show_desc", "bool", None),
}

HISTORY_FLAGS: dict[str, tuple[str, str, Any]] = {
    "-o": ("output", "str", None),
    "--output": ("output", "str", None),
    "--max": ("max", "str", None),
}

GET_VALUES_FLAGS: dict[str, tuple[str, str, Any]] = {
    "-a": ("all", "bool", None),
    "--all": ("all", "bool", None),
    "-o": ("output", "str", None),
    "--output": ("output", "str", None),
    "--revision": ("revision", "str", None),
}

VERSION_FLAGS: dict[str, tuple[str, str, Any]] = {
    "--short": ("short", "bool", None),
    "--template": ("template", "str", None),
}

USAGE = {
    "install": "helm install [NAME] [CHART] [flags]",
    "upgrade": "helm upgrade [RELEASE] [CHART] [flags]",
    "uninstall": "helm uninstall RELEASE_NAME [...] [flags]",
    "template": "helm template [NAME] [CHART] [flags]",
    "lint": "helm lint PATH [flags]",
    "list": "helm list [flags]",
    "status": "helm status RELEASE_NAME [flags]",
    "history": "helm history RELEASE_NAME [flags]",
    "get values": "helm get values RELEASE_NAME [flags]",
    "version": "helm version [flags]",
}


def parse_bool(flag: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise CLIError(
        f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: parsing '
        f'"{value}": invalid syntax'
    )


def parse_args(argv: list[str], table: dict[str, tuple[str, str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Split argv into options (by dest) and positional arguments, pflag style."""
    flags = {**GLOBAL_FLAGS, **table}
    opts: dict[str, Any] = {}
    args: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            args.extend(argv[i:])
            break
        if not a.startswith("-") or a == "-":
            args.append(a)
            continue
        if a.startswith("--"):
            name, eq, inline = a.partition("=")
            if name not in flags:
                raise CLIError(f"unknown flag: {name}")
            has_inline = bool(eq)
        else:
            name = a[:2]
            rest = a[2:]
            if name not in flags:
                raise CLIError(f"unknown shorthand flag: '{a[1]}' in {a}")
            dest, kind, _ = flags[name]
            if kind == "bool" and rest and not rest.startswith("="):
                # Combined boolean shorthands (-aA): expand and re-parse.
                argv = argv[:i] + ["-" + rest] + argv[i:]
                opts[dest] = True
                continue
            has_inline = bool(rest)
            inline = rest[1:] if rest.startswith("=") else rest
        dest, kind, default = flags[name]
        if kind == "bool":
            opts[dest] = parse_bool(name, inline) if has_inline else True
        elif kind == "opt":
            opts[dest] = inline if has_inline else default
        else:
            if has_inline:
                value = inline
            else:
                if i >= len(argv):
                    raise CLIError(f"flag needs an argument: {name}")
                value = argv[i]
                i += 1
            if kind == "list":
                opts.setdefault(dest, []).append(value)
            else:
                opts[dest] = value
    return opts, args


def require_exact(verb: str, args: list[str], n: int) -> None:
    if len(args) != n:
        word = "argument" if n == 1 else "arguments"
        raise CLIError(f'"helm {verb}" requires {n} {word}\n\nUsage:  {USAGE[verb]}')


def require_min(verb: str, args: list[str], n: int) -> None:
    if len(args) < n:
        word = "argument" if n == 1 else "arguments"
        raise CLIError(f'"helm {verb}" requires at least {n} {word}\n\nUsage:  {USAGE[verb]}')


def require_none(verb: str, args: list[str]) -> None:
    if args:
        raise CLIError(f'unknown command "{args[0]}" for "helm {verb}"')


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(flag: str, text: str) -> float:
    """Seconds in a Go duration ("5m0s", "90s", "1h30m", "500ms")."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise CLIError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"')
    return sign * total


def timeout_seconds(opts: dict[str, Any]) -> int:
    seconds = parse_duration("--timeout", opts.get("timeout") or "5m0s")
    # The library takes whole seconds; round up so "500ms" still waits.
    return max(1, int(-(-seconds // 1))) if seconds > 0 else 300


def int_flag(flag: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise CLIError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseInt: parsing "{value}": invalid syntax') from None


# --------------------------------------------------------------------------------------------
# Values: helm's MergeValues, with Helm's own strvals parser
# --------------------------------------------------------------------------------------------


def merge_maps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """helm's pkg/cli/values mergeMaps: nested maps merge, anything else replaces."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_maps(out[k], v)
        else:
            out[k] = v
    return out


_KEY_SPECIALS = re.compile(r"([\\.\[\],={}])")


def _esc_key(k: str) -> str:
    return _KEY_SPECIALS.sub(r"\\\1", k)


class _Placeholders:
    """Encodes a values map as strvals assignments whose leaves are unique tokens.

    strvals' ParseInto(expr, base) descends into the maps and lists already in `base`
    (`--set list[1]=x` edits the list a values file gave; `--set a.b=1` fails when a values
    file made `a` a string). The C library parses into a fresh map only, so the accumulated
    values are replayed in front of the user's expression, in the same call, with every leaf
    replaced by a token that strvals keeps as a plain string; the tokens are swapped back for
    the original values afterwards. Empty maps and lists get a marker entry that is removed.
    """

    def __init__(self) -> None:
        nonce = secrets.token_hex(6)
        self.prefix = f"@helmshim{nonce}@"
        self.values: dict[str, Any] = {}
        self.empty_map_key = f"{self.prefix}emptymap"
        self.empty_list_item = f"{self.prefix}emptylist"

    def token(self, value: Any) -> str:
        t = f"{self.prefix}{len(self.values)}"
        self.values[t] = value
        return t

    def encode(self, base: dict[str, Any], typed: bool) -> list[str]:
        """Assignments rebuilding `base`; `typed` (--set) writes booleans and nulls as
        themselves, so strvals sees their real types."""
        out: list[str] = []

        def q(t: str) -> str:
            return t

        def walk(path: str, v: Any) -> None:
            if isinstance(v, dict):
                if not v:
                    out.append(f"{path}.{_esc_key(self.empty_map_key)}={q(self.token(None))}")
                for k, sub in v.items():
                    walk(f"{path}.{_esc_key(k)}", sub)
            elif isinstance(v, list):
                if not v:
                    out.append(f"{path}[0]={q(self.empty_list_item)}")
                for idx, sub in enumerate(v):
                    walk(f"{path}[{idx}]", sub)
            elif typed and (v is None or isinstance(v, bool)):
                out.append(f"{path}={'null' if v is None else str(v).lower()}")
            else:
                out.append(f"{path}={q(self.token(v))}")

        for k, v in base.items():
            walk(_esc_key(k), v)
        return out

    def decode(self, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: self.decode(sub) for k, sub in v.items() if k != self.empty_map_key}
        if isinstance(v, list):
            if len(v) == 1 and v[0] == self.empty_list_item:
                return []
            return [None if sub == self.empty_list_item else self.decode(sub) for sub in v]
        if isinstance(v, str) and v in self.values:
            return self.values[v]
        return v


def _parse(func: str, expression: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(_native.call_string(func, expression))
    return parsed


def parse_into(func: str, expression: str, base: dict[str, Any]) -> dict[str, Any]:
    """strvals.Parse*Into(expression, base) through the C library's parser."""
    if not base:
        return _parse(func, expression)
    if func == "helm_strvals_parse_json":
        # JSON mode reads whole JSON values: the base is replayed exactly, key by key.
        prefix = ",".join(f"{_esc_key(k)}={json.dumps(v)}" for k, v in base.items())
        return _parse(func, prefix + "," + expression)
    if func == "helm_strvals_parse_literal":
        return literal_into(expression, base)
    ph = _Placeholders()
    prefix = ",".join(ph.encode(base, typed=func == "helm_strvals_parse"))
    try:
        parsed = _parse(func, prefix + "," + expression)
    except helm.HelmError as err:
        # Keep helm's message but never show the placeholder tokens.
        raise helm.HelmValuesError(_strip_tokens(str(err), ph)) from None
    return ph.decode(parsed)  # type: ignore[no-any-return]


def literal_into(expression: str, base: dict[str, Any]) -> dict[str, Any]:
    """strvals.ParseLiteralInto: one assignment whose value is everything after `=`.

    The literal parser takes the rest of the expression verbatim, so the base cannot be
    replayed in front of it; the one path it sets is applied to the base instead, with the
    same descent rules (maps merge, list indices extend, anything else cannot be descended).
    """
    fresh = _parse("helm_strvals_parse_literal", expression)
    out = json.loads(json.dumps(base))

    def apply(target: Any, update: Any) -> Any:
        if isinstance(update, dict):
            if target is None or target == {}:
                target = {}
            if not isinstance(target, dict):
                raise helm.HelmValuesError(f"unable to parse key: interface conversion: interface {{}} is {_go_type(target)}, not map[string]interface {{}}")
            for k, v in update.items():
                target[k] = apply(target.get(k), v)
            return target
        if isinstance(update, list):
            if target is None:
                target = []
            if not isinstance(target, list):
                raise helm.HelmValuesError(f"unable to parse key: interface conversion: interface {{}} is {_go_type(target)}, not []interface {{}}")
            target = list(target)
            for i, v in enumerate(update):
                if v is None:
                    continue
                while len(target) <= i:
                    target.append(None)
                target[i] = apply(target[i], v)
            return target
        return update

    return apply(out, fresh)  # type: ignore[no-any-return]


def _go_type(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _strip_tokens(message: str, ph: _Placeholders) -> str:
    for token, value in ph.values.items():
        message = message.replace(token, json.dumps(value))
    return message


def read_values_file(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path):
        raise CLIError(f"could not read {path}: remote values files are not supported by scripts/helm")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as err:
        raise CLIError(f"open {path}: {err.strerror.lower() if err.strerror else err}") from None


def merge_values(opts: dict[str, Any]) -> dict[str, Any]:
    """helm's values.Options.MergeValues, same order and error messages."""
    base: dict[str, Any] = {}
    for path in opts.get("values_files", []):
        raw = read_values_file(path)
        try:
            current = helm.values_from_yaml(raw) if raw.strip() else {}
        except helm.HelmError as err:
            raise CLIError(f"failed to parse {path}: {err}") from None
        base = merge_maps(base, current or {})
    for value in opts.get("set_json", []):
        trimmed = value.strip()
        if trimmed.startswith("{"):
            try:
                obj = json.loads(trimmed)
            except ValueError:
                raise CLIError(f"failed parsing --set-json data JSON: {value}") from None
            if not isinstance(obj, dict):
                raise CLIError(f"failed parsing --set-json data JSON: {value}")
            base = merge_maps(base, obj)
        else:
            try:
                base = parse_into("helm_strvals_parse_json", value, base)
            except helm.HelmError:
                raise CLIError(f"failed parsing --set-json data {value}") from None
    for flag, key, func in (
        ("--set", "set", "helm_strvals_parse"),
        ("--set-string", "set_string", "helm_strvals_parse_string"),
    ):
        for value in opts.get(key, []):
            try:
                base = parse_into(func, value, base)
            except helm.HelmError as err:
                raise CLIError(f"failed parsing {flag} data: {err}") from None
    for value in opts.get("set_file", []):
        try:
            base = parse_file_into(value, base)
        except helm.HelmError as err:
            raise CLIError(f"failed parsing --set-file data: {err}") from None
    for value in opts.get("set_literal", []):
        try:
            base = parse_into("helm_strvals_parse_literal", value, base)
        except helm.HelmError as err:
            raise CLIError(f"failed parsing --set-literal data: {err}") from None
    return base


def parse_file_into(expression: str, base: dict[str, Any]) -> dict[str, Any]:
    """strvals.ParseIntoFile: the structure is parsed as --set-string would (file mode keeps
    the same keys and lists), then every path is read through the C library's file reader."""
    # Validates the expression and reads every file the way helm does.
    _parse("helm_strvals_parse_file", expression)
    ph = _Placeholders()
    prefix = ",".join(ph.encode(base, typed=False))
    parsed = _parse("helm_strvals_parse_string", (prefix + "," if prefix else "") + expression)

    def read(path: str) -> str:
        got = _parse("helm_strvals_parse_file", "f=" + path.replace("\\", "\\\\").replace(",", "\\,"))
        return str(got["f"])

    def walk(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: walk(sub) for k, sub in v.items()}
        if isinstance(v, list):
            return [walk(sub) for sub in v]
        if isinstance(v, str) and not v.startswith(ph.prefix):
            return read(v)
        return v

    return ph.decode(walk(parsed))  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------------


def to_yaml(obj: Any) -> str:
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=True, allow_unicode=True, width=1 << 30)


def to_json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def output_format(opts: dict[str, Any]) -> str:
    fmt = opts.get("output") or "table"
    if fmt not in ("table", "json", "yaml"):
        raise CLIError(f'invalid argument "{fmt}" for "-o, --output" flag: invalid format type')
    return fmt


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def ansic(t: datetime | None) -> str:
    if t is None:
        return ""
    local = t.astimezone()
    return local.strftime("%a %b ") + f"{local.day:>2}" + local.strftime(" %H:%M:%S %Y")


def go_time_string(t: datetime | None) -> str:
    """Go's Time.Local().String(): 2006-01-02 15:04:05.999999999 -0700 MST."""
    if t is None:
        return ""
    local = t.astimezone()
    frac = f".{local.microsecond:06d}".rstrip("0") if local.microsecond else ""
    return local.strftime("%Y-%m-%d %H:%M:%S") + frac + local.strftime(" %z %Z")


def table(rows: list[list[str]], max_width: int = 60) -> str:
    """gosuri/uitable as helm uses it: cells padded to the column width, tab separated."""
    rows = [[c if len(c) <= max_width else c[: max_width - 3] + "..." for c in r] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("\t".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows) + "\n"


# --------------------------------------------------------------------------------------------
# Cluster access
# --------------------------------------------------------------------------------------------


def namespace_of(opts: dict[str, Any]) -> str | None:
    return opts.get("namespace") or os.environ.get("HELM_NAMESPACE") or None


def make_config(opts: dict[str, Any], namespace: str | None = None, storage: str | None = None) -> helm.Config:
    if opts.get("debug"):
        import logging

        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
        helm.enable_logging(logging.DEBUG)
    kubeconfig = opts.get("kubeconfig") or None
    return helm.Config(
        kubeconfig_path=kubeconfig,
        kube_context=opts.get("kube_context") or os.environ.get("HELM_KUBECONTEXT") or None,
        kube_token=opts.get("kube_token") or os.environ.get("HELM_KUBETOKEN") or None,
        kube_apiserver=opts.get("kube_apiserver") or os.environ.get("HELM_KUBEAPISERVER") or None,
        kube_ca_file=opts.get("kube_ca_file") or os.environ.get("HELM_KUBECAFILE") or None,
        kube_insecure_skip_tls_verify=bool(opts.get("kube_insecure")),
        kube_as_user=opts.get("kube_as_user"),
        kube_as_groups=opts.get("kube_as_groups"),
        burst_limit=int_flag("--burst-limit", opts.get("burst_limit")),
        qps=float(opts["qps"]) if opts.get("qps") else None,
        namespace=namespace if namespace is not None else namespace_of(opts),
        storage_driver=storage or os.environ.get("HELM_DRIVER") or None,
    )


def _kubeconfig_context(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cluster, user) of the selected context, from --kubeconfig / KUBECONFIG / ~/.kube/config."""
    paths = [opts["kubeconfig"]] if opts.get("kubeconfig") else [
        p for p in (os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")).split(os.pathsep) if p
    ]
    docs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                docs.append(yaml.safe_load(fh) or {})
        except OSError:
            continue

    def find(section: str, name: str | None) -> dict[str, Any]:
        for d in docs:
            for item in d.get(section) or []:
                if item.get("name") == name:
                    return dict(item.get(section[:-1]) or {})
        return {}

    current = opts.get("kube_context") or next((d.get("current-context") for d in docs if d.get("current-context")), None)
    ctx = find("contexts", current)
    return find("clusters", ctx.get("cluster")), find("users", ctx.get("user"))


def create_namespace(opts: dict[str, Any], namespace: str) -> None:
    """POST the Namespace helm's --create-namespace creates (labels name=<ns>); exists is fine."""
    import base64
    import ssl
    import tempfile
    import urllib.error
    import urllib.request

    cluster, user = _kubeconfig_context(opts)
    server = str(opts.get("kube_apiserver") or cluster.get("server") or "").rstrip("/")
    if not server:
        raise CLIError("create namespace: no API server in the kubeconfig")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = opts.get("kube_token") or user.get("token")
    if not token and user.get("tokenFile"):
        with open(user["tokenFile"], encoding="utf-8") as fh:
            token = fh.read().strip()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    context = None
    if server.startswith("https"):
        context = ssl.create_default_context()
        tmp = tempfile.mkdtemp(prefix="helm-shim-")

        def material(src: dict[str, Any], key: str) -> str | None:
            if src.get(key):
                return str(src[key])
            if src.get(key + "-data"):
                path = os.path.join(tmp, key)
                with open(path, "wb") as fh:
                    fh.write(base64.b64decode(src[key + "-data"]))
                return path
            return None

        ca = opts.get("kube_ca_file") or material(cluster, "certificate-authority")
        if ca:
            context.load_verify_locations(ca)
        if cluster.get("insecure-skip-tls-verify") or opts.get("kube_insecure"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        cert, key = material(user, "client-certificate"), material(user, "client-key")
        if cert and key:
            context.load_cert_chain(cert, key)
    body = json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"name": namespace}}}
    ).encode()
    req = urllib.request.Request(server + "/api/v1/namespaces", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, context=context, timeout=30):
            pass
    except urllib.error.HTTPError as err:
        if err.code != 409:
            detail = err.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise CLIError(f"create namespace {namespace}: {detail}") from None
    except OSError as err:
        raise CLIError(f"create namespace {namespace}: {err}") from None


def call(func: str, *args: Any) -> Any:
    return json.loads(_native.call_string(func, *args))


NONE = _native.HANDLE(0)


def locate_chart(ref: str) -> str:
    """helm's ChartPathOptions.LocateChart for what this shim supports (local, oci://)."""
    ref = ref.strip()
    if ref.startswith("oci://"):
        return ref
    if os.path.exists(ref):
        return os.path.abspath(ref)
    if os.path.isabs(ref) or ref.startswith("."):
        raise CLIError(f'path "{ref}" not found')
    if "/" not in ref:
        raise CLIError(f"non-absolute URLs should be in form of repo_name/path_to_chart, got: {ref}")
    raise CLIError(f"repo {ref.split('/')[0]} not found")


def openapi_disabled(opts: dict[str, Any]) -> bool:
    if opts.get("disable_openapi_validation"):
        return True
    return os.environ.get("HELM_SHIM_OPENAPI_VALIDATION", "") not in ("1", "true")


def wait_strategy(opts: dict[str, Any]) -> str:
    wait = opts.get("wait")
    if wait is None or wait is False:
        return "hookOnly"
    if wait is True or wait in ("true", ""):
        return "watcher"
    if wait == "false":
        return "hookOnly"
    if wait not in ("watcher", "legacy", "hookOnly"):
        raise CLIError(f'invalid argument "{wait}" for "--wait" flag: invalid wait strategy "{wait}"')
    return str(wait)


def labels_of(opts: dict[str, Any]) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    for item in opts.get("labels", []):
        for pair in item.split(","):
            k, eq, v = pair.partition("=")
            if not eq:
                raise CLIError(f'invalid argument "{item}" for "-l, --labels" flag: {pair} must be formatted as key=value')
            labels[k] = v
    return labels or None


def release_info(cfg: helm.Config, name: str, revision: int | None = None) -> dict[str, Any]:
    """The stored release's info block (description, first/last deployed) and config."""
    try:
        got = call("helm_get", cfg._raw(), name, json.dumps({"revision": revision}) if revision else None)
    except helm.HelmError:
        return {}
    return got if isinstance(got, dict) else {}


def print_status(summary: dict[str, Any], info: dict[str, Any], fmt: str, hide_notes: bool = False, dry_run: bool = False) -> None:
    inf = info.get("info") or {}
    if fmt != "table":
        obj = {
            "name": summary.get("name"),
            "namespace": summary.get("namespace"),
            "version": summary.get("revision"),
            "info": {
                "first_deployed": inf.get("first_deployed") or summary.get("deployed_at"),
                "last_deployed": inf.get("last_deployed") or summary.get("deployed_at"),
                "deleted": inf.get("deleted", ""),
                "description": inf.get("description", ""),
                "status": summary.get("status"),
                "notes": summary.get("notes", ""),
            },
            "chart": {
                "metadata": {
                    "name": summary.get("chart_name"),
                    "version": summary.get("chart_version"),
                    "appVersion": summary.get("app_version"),
                }
            },
            "config": info.get("config") or {},
            "manifest": summary.get("manifest", ""),
        }
        sys.stdout.write(to_json(obj) + "\n" if fmt == "json" else to_yaml(obj))
        return
    out = [f"NAME: {summary.get('name')}"]
    deployed = parse_time(inf.get("last_deployed") or summary.get("deployed_at"))
    if deployed is not None:
        out.append(f"LAST DEPLOYED: {ansic(deployed)}")
    out.append(f"NAMESPACE: {summary.get('namespace')}")
    out.append(f"STATUS: {summary.get('status')}")
    out.append(f"REVISION: {summary.get('revision')}")
    description = inf.get("description") or ("Dry run complete" if dry_run else "")
    out.append(f"DESCRIPTION: {description}")
    hooks = info.get("hooks") or []
    tests = [h for h in hooks if "test" in (h.get("events") or [])]
    out.append("TEST SUITE: None" if not tests else f"TEST SUITE: {len(tests)} test hook(s)")
    text = "\n".join(out) + "\n"
    if dry_run or str(description).lower() == "dry run complete":
        text += f"MANIFEST:\n{summary.get('manifest', '')}"
    notes = (summary.get("notes") or "").strip()
    if notes and not hide_notes:
        text += f"NOTES:\n{notes}\n"
    sys.stdout.write(text)


# --------------------------------------------------------------------------------------------
# Verbs
# --------------------------------------------------------------------------------------------


def install_options(opts: dict[str, Any], namespace: str | None) -> dict[str, Any]:
    o: dict[str, Any] = {
        "timeout_seconds": timeout_seconds(opts),
        "wait": wait_strategy(opts),
        "wait_for_jobs": bool(opts.get("wait_for_jobs")),
        "disable_openapi_validation": openapi_disabled(opts),
        "create_namespace": bool(opts.get("create_namespace")),
        "skip_schema_validation": bool(opts.get("skip_schema_validation")),
        "force_conflicts": bool(opts.get("force_conflicts")),
        "take_ownership": bool(opts.get("take_ownership")),
        "hide_notes": bool(opts.get("hide_notes")),
        "disable_hooks": bool(opts.get("disable_hooks")),
        "rollback_on_failure": bool(opts.get("rollback_on_failure")),
        "skip_crds": bool(opts.get("skip_crds")),
        "server_side_apply": parse_bool("--server-side", str(opts.get("server_side", "true"))),
    }
    if namespace:
        o["namespace"] = namespace
    if opts.get("description"):
        o["description"] = opts["description"]
    if labels_of(opts):
        o["labels"] = labels_of(opts)
    if opts.get("dry_run"):
        o["dry_run"] = dry_run_strategy(opts)
    if opts.get("chart_version"):
        o["chart_version"] = opts["chart_version"]  # used for oci:// references, as in helm
    if opts.get("devel"):
        o["devel"] = True
    return o


def dry_run_strategy(opts: dict[str, Any]) -> str:
    d = opts.get("dry_run")
    if d in (True, "true", "client"):
        return "client"
    if d in ("server", "none"):
        return str(d)
    if d == "false":
        return "none"
    raise CLIError(f'invalid dry-run value "{d}": must be "client", "server" or "none"')


def run_install(opts: dict[str, Any], name: str, chart_ref: str, prefix: str) -> None:
    try:
        chart = locate_chart(chart_ref)
        values = merge_values(opts)
    except CLIError as err:
        raise CLIError(prefix + str(err)) from None
    fmt = output_format(opts)
    namespace = namespace_of(opts)
    cfg = make_config(opts)
    o = install_options(opts, namespace)
    try:
        summary = call(
            "helm_install", cfg._raw(), NONE, NONE, chart, name, json.dumps(values), json.dumps(o)
        )
    except helm.HelmError as err:
        if not (o.get("create_namespace") and "failed to download openapi" in str(err)):
            raise CLIError(prefix + str(err)) from None
        # Helm validates the Namespace it creates against the server's OpenAPI document even
        # with --disable-openapi-validation; a server without one (the test API server) fails
        # there. Create the same Namespace object directly, then install without the flag.
        create_namespace(opts, namespace or "default")
        o["create_namespace"] = False
        try:
            summary = call(
                "helm_install", cfg._raw(), NONE, NONE, chart, name, json.dumps(values), json.dumps(o)
            )
        except helm.HelmError as err2:
            raise CLIError(prefix + str(err2)) from None
    dry = bool(opts.get("dry_run")) and o.get("dry_run") != "none"
    info = {} if dry else release_info(cfg, name)
    print_status(summary, info, fmt, hide_notes=bool(opts.get("hide_notes")), dry_run=dry)


def cmd_install(opts: dict[str, Any], args: list[str]) -> None:
    require_min("install", args, 1)
    if len(args) == 1:
        raise CLIError("must either provide a name or specify --generate-name")
    if len(args) > 2:
        raise CLIError(f"expected at most two arguments, unexpected arguments: {', '.join(args[2:])}")
    name, chart = args
    run_install(opts, name, chart, "INSTALLATION FAILED: ")


def release_exists(cfg: helm.Config, name: str) -> bool:
    """helm upgrade --install's check: a release with history that is not uninstalled."""
    try:
        history = call("helm_history", cfg._raw(), name, json.dumps({"max": 1}))
    except helm.HelmNotFoundError:
        return False
    except helm.HelmError as err:
        if "not found" in str(err):
            return False
        raise CLIError(str(err)) from None
    return bool(history) and history[-1].get("status") != "uninstalled"


def cmd_upgrade(opts: dict[str, Any], args: list[str]) -> None:
    require_exact("upgrade", args, 2)
    name, chart_ref = args
    fmt = output_format(opts)
    namespace = namespace_of(opts)
    cfg = make_config(opts)
    if opts.get("install") and not release_exists(cfg, name):
        if fmt == "table":
            sys.stdout.write(f'Release "{name}" does not exist. Installing it now.\n')
            sys.stdout.flush()
        run_install(opts, name, chart_ref, "")
        return
    chart = locate_chart(chart_ref)
    values = merge_values(opts)
    o: dict[str, Any] = {
        "timeout_seconds": timeout_seconds(opts),
        "wait": wait_strategy(opts),
        "wait_for_jobs": bool(opts.get("wait_for_jobs")),
        "disable_openapi_validation": openapi_disabled(opts),
        "reuse_values": bool(opts.get("reuse_values")),
        "reset_values": bool(opts.get("reset_values")),
        "reset_then_reuse_values": bool(opts.get("reset_then_reuse_values")),
        "cleanup_on_fail": bool(opts.get("cleanup_on_fail")),
        "rollback_on_failure": bool(opts.get("rollback_on_failure")),
        "skip_schema_validation": bool(opts.get("skip_schema_validation")),
        "force_conflicts": bool(opts.get("force_conflicts")),
        "take_ownership": bool(opts.get("take_ownership")),
        "hide_notes": bool(opts.get("hide_notes")),
        "disable_hooks": bool(opts.get("disable_hooks")),
        "skip_crds": bool(opts.get("skip_crds")),
    }
    if "server_side" in opts:
        ssa = str(opts["server_side"])
        if ssa not in ("true", "false", "auto"):
            raise CLIError(f'invalid server-side value "{ssa}": must be "true", "false" or "auto"')
        o["server_side_apply"] = ssa
    if namespace:
        o["namespace"] = namespace
    if opts.get("description"):
        o["description"] = opts["description"]
    if labels_of(opts):
        o["labels"] = labels_of(opts)
    if opts.get("chart_version"):
        # (The library's upgrade panics on "devel"; helm-c 0.2.2. Not passed.)
        o["chart_version"] = opts["chart_version"]
    if opts.get("max_history") is not None:
        o["max_history"] = int_flag("--history-max", opts["max_history"])
    if opts.get("dry_run"):
        o["dry_run"] = dry_run_strategy(opts)
    try:
        summary = call("helm_upgrade", cfg._raw(), NONE, NONE, chart, name, json.dumps(values), json.dumps(o))
    except helm.HelmNotFoundError:
        raise CLIError(f'UPGRADE FAILED: "{name}" has no deployed releases') from None
    except helm.HelmError as err:
        raise CLIError("UPGRADE FAILED: " + str(err)) from None
    dry = bool(opts.get("dry_run")) and o.get("dry_run") != "none"
    if fmt == "table":
        sys.stdout.write(f'Release "{name}" has been upgraded. Happy Helming!\n')
    info = {} if dry else release_info(cfg, name)
    print_status(summary, info, fmt, hide_notes=bool(opts.get("hide_notes")), dry_run=dry)


def cmd_template(opts: dict[str, Any], args: list[str]) -> None:
    require_min("template", args, 1)
    if len(args) == 1:
        name, chart_ref = "release-name", args[0]
    elif len(args) == 2:
        name, chart_ref = args
    else:
        raise CLIError(f"expected at most two arguments, unexpected arguments: {', '.join(args[2:])}")
    chart = locate_chart(chart_ref)
    values = merge_values(opts)
    # helm template = a client-only dry-run install; nothing touches a cluster.
    cfg = make_config(opts, storage="memory")
    o: dict[str, Any] = {
        "dry_run": "client",
        "namespace": namespace_of(opts) or "default",
        "skip_schema_validation": bool(opts.get("skip_schema_validation")),
        "disable_hooks": bool(opts.get("disable_hooks")),
        "skip_crds": bool(opts.get("skip_crds")),
        "disable_openapi_validation": True,
    }
    if opts.get("chart_version"):
        o["chart_version"] = opts["chart_version"]
    if opts.get("devel"):
        o["devel"] = True
    try:
        summary = call("helm_install", cfg._raw(), NONE, NONE, chart, name, json.dumps(values), json.dumps(o))
    except helm.HelmError as err:
        raise CLIError(str(err)) from None
    text = summary.get("manifest", "").strip() + "\n"
    if not opts.get("disable_hooks"):
        text += "".join(f"---\n# Source: {path}\n{doc}\n" for path, doc in template_hooks(chart, values, name, o["namespace"]))
    sys.stdout.write(text)


INSTALL_ORDER = [
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
    "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
    "PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
    "ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
    "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
]


def template_hooks(chart_path: str, values: dict[str, Any], name: str, namespace: str) -> list[tuple[str, str]]:
    """The chart's hooks as `helm template` prints them after the manifest.

    The library's dry-run install returns the manifest only, so the chart is rendered again
    and the hook documents picked out the way helm's releaseutil.SortManifests does: files in
    path order, documents split on `---`, then a stable sort by kind in install order.
    """
    if chart_path.startswith("oci://"):
        return []
    with helm.Chart.load(chart_path) as chart:
        files = chart.render(values, name=name, namespace=namespace, is_install=True)
    hooks: list[tuple[str, str, str]] = []
    for path in sorted(files):
        base = os.path.basename(path)
        if base.startswith("_") or base == "NOTES.txt" or not files[path].strip():
            continue
        for doc in re.split(r"(?:^|\n)---", files[path]):
            doc = doc.strip()
            if not doc:
                continue
            try:
                obj = yaml.safe_load(doc)
            except yaml.YAMLError:
                continue
            if not isinstance(obj, dict):
                continue
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if "helm.sh/hook" in annotations:
                hooks.append((str(obj.get("kind", "")), path, doc))

    def order(h: tuple[str, str, str]) -> tuple[int, str]:
        kind = h[0]
        return (INSTALL_ORDER.index(kind), "") if kind in INSTALL_ORDER else (len(INSTALL_ORDER), kind)

    return [(path, doc) for _, path, doc in sorted(hooks, key=order)]


SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def cmd_lint(opts: dict[str, Any], args: list[str]) -> None:
    paths = args or ["."]
    values = merge_values(opts)
    lint_opts: dict[str, Any] = {"strict": bool(opts.get("strict"))}
    if namespace_of(opts):
        lint_opts["namespace"] = namespace_of(opts)
    for key in ("with_subcharts", "quiet", "skip_schema_validation"):
        if opts.get(key):
            lint_opts[key] = True
    if opts.get("kube_version"):
        lint_opts["kube_version"] = opts["kube_version"]
    quiet = bool(opts.get("quiet"))
    message = []
    failed = 0
    errors_or_warnings = 0
    for path in paths:
        try:
            result = call("helm_lint_run_opts", path, json.dumps(values), json.dumps(lint_opts))
        except helm.HelmError as err:
            raise CLIError(str(err)) from None
        msgs = result.get("messages") or []
        errs = result.get("errors") or []
        has = bool(errs) or any(m.get("severity", 0) > 1 for m in msgs)
        if has:
            errors_or_warnings += 1
        if quiet and not has:
            continue
        message.append(f"==> Linting {path}\n")
        if not msgs:
            for e in errs:
                message.append(f"Error {e}\n")
        for m in msgs:
            if not quiet or m.get("severity", 0) > 1:
                message.append(f"[{SEVERITY.get(m.get('severity', 0), 'UNKNOWN')}] {m.get('path', '')}: {m.get('error', '')}\n")
        if errs:
            failed += 1
        message.append("\n")
    sys.stdout.write("".join(message))
    summary = f"{len(paths)} chart(s) linted, {failed} chart(s) failed"
    if failed:
        raise CLIError(summary)
    if not quiet or errors_or_warnings:
        sys.stdout.write(summary + "\n")


def cmd_uninstall(opts: dict[str, Any], args: list[str]) -> None:
    require_min("uninstall", args, 1)
    cfg = make_config(opts)
    o: dict[str, Any] = {
        "keep_history": bool(opts.get("keep_history")),
        "ignore_not_found": bool(opts.get("ignore_not_found")),
        "dry_run": bool(opts.get("dry_run")),
        "disable_hooks": bool(opts.get("disable_hooks")),
        "wait": wait_strategy(opts),
        "timeout_seconds": timeout_seconds(opts),
    }
    if opts.get("description"):
        o["description"] = opts["description"]
    if opts.get("cascade"):
        if opts["cascade"] not in ("background", "foreground", "orphan"):
            raise CLIError(f'invalid cascade value ({opts["cascade"]}). Must be "background", "foreground", or "orphan"')
        o["deletion_propagation"] = opts["cascade"]
    for name in args:
        try:
            res = call("helm_uninstall", cfg._raw(), name, json.dumps(o))
        except helm.HelmError as err:
            raise CLIError(str(err)) from None
        if res.get("info"):
            sys.stdout.write(res["info"] + "\n")
        sys.stdout.write(f'release "{name}" uninstalled\n')


def cmd_list(opts: dict[str, Any], args: list[str]) -> None:
    require_none("list", args)
    fmt = output_format(opts)
    cfg = make_config(opts)
    o: dict[str, Any] = {}
    for key in ("all", "all_namespaces", "by_date", "deployed", "failed", "pending", "superseded", "uninstalled", "uninstalling"):
        if opts.get(key):
            o[key] = True
    if opts.get("reverse"):
        o["sort_reverse"] = True
    if opts.get("filter"):
        o["filter"] = opts["filter"]
    if opts.get("selector"):
        o["selector"] = opts["selector"]
    o["limit"] = int_flag("--max", opts.get("max")) or 256
    if opts.get("offset"):
        o["offset"] = int_flag("--offset", opts["offset"])
    try:
        releases = call("helm_list", cfg._raw(), json.dumps(o)) or []
    except helm.HelmError as err:
        raise CLIError(str(err)) from None
    if opts.get("short"):
        names = [r.get("name", "") for r in releases]
        if fmt == "json":
            sys.stdout.write(to_json(names) + "\n")
        elif fmt == "yaml":
            sys.stdout.write(to_yaml(names))
        else:
            sys.stdout.write("".join(n + "\n" for n in names))
        return
    elements = [
        {
            "name": r.get("name", ""),
            "namespace": r.get("namespace", ""),
            "revision": str(r.get("revision", "")),
            "updated": go_time_string(parse_time(r.get("deployed_at"))),
            "status": r.get("status", ""),
            "chart": f"{r.get('chart_name', '')}-{r.get('chart_version', '')}",
            "app_version": r.get("app_version", ""),
        }
        for r in releases
    ]
    if fmt == "json":
        sys.stdout.write(json.dumps(elements, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(to_yaml(elements))
    else:
        rows = [] if opts.get("no_headers") else [["NAME", "NAMESPACE", "REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION"]]
        rows += [[e["name"], e["namespace"], e["revision"], e["updated"], e["status"], e["chart"], e["app_version"]] for e in elements]
        if rows:
            sys.stdout.write(table(rows))


def cmd_status(opts: dict[str, Any], args: list[str]) -> None:
    require_exact("status", args, 1)
    fmt = output_format(opts)
    cfg = make_config(opts)
    revision = int_flag("--revision", opts.get("revision"))
    try:
        summary = call("helm_status", cfg._raw(), args[0], json.dumps({"revision": revision}) if revision else None)
    except helm.HelmError as err:
        raise CLIError(str(err)) from None
    print_status(summary, release_info(cfg, args[0], revision), fmt)


def cmd_history(opts: dict[str, Any], args: list[str]) -> None:
    require_exact("history", args, 1)
    fmt = output_format(opts)
    cfg = make_config(opts)
    max_revisions = int_flag("--max", opts.get("max")) or 256
    try:
        revisions = call("helm_history", cfg._raw(), args[0], json.dumps({"max": max_revisions}))
    except helm.HelmError as err:
        raise CLIError(str(err)) from None
    if not revisions:
        raise CLIError("release: not found")
    elements = []
    for r in revisions:
        description = r.get("description")
        if description is None:
            description = (release_info(cfg, args[0], r.get("revision")).get("info") or {}).get("description", "")
        elements.append(
            {
                "revision": r.get("revision"),
                "updated": r.get("deployed_at", ""),
                "status": r.get("status", ""),
                "chart": f"{r.get('chart_name', '')}-{r.get('chart_version', '')}",
                "app_version": r.get("app_version", ""),
                "description": description,
            }
        )
    if fmt == "json":
        sys.stdout.write(json.dumps(elements, separators=(",", ":")) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(to_yaml(elements))
    else:
        rows = [["REVISION", "UPDATED", "STATUS", "CHART", "APP VERSION", "DESCRIPTION"]]
        rows += [
            [str(e["revision"]), ansic(parse_time(e["updated"])), e["status"], e["chart"], e["app_version"], e["description"]]
            for e in elements
        ]
        sys.stdout.write(table(rows))


def cmd_get(opts: dict[str, Any], args: list[str]) -> None:
    if not args or args[0] != "values":
        what = args[0] if args else ""
        raise CLIError(f'unknown command "{what}" for "helm get" (scripts/helm implements only "get values")')
    args = args[1:]
    require_exact("get values", args, 1)
    fmt = output_format(opts)
    cfg = make_config(opts)
    o: dict[str, Any] = {}
    if opts.get("all"):
        o["all"] = True
    revision = int_flag("--revision", opts.get("revision"))
    if revision:
        o["revision"] = revision
    try:
        values = call("helm_get_values", cfg._raw(), args[0], json.dumps(o) if o else None)
    except helm.HelmError as err:
        raise CLIError(str(err)) from None
    if fmt == "json":
        sys.stdout.write(to_json(values) + "\n")
    elif fmt == "yaml":
        sys.stdout.write(to_yaml(values))
    else:
        header = "COMPUTED VALUES:" if opts.get("all") else "USER-SUPPLIED VALUES:"
        sys.stdout.write(header + "\n" + to_yaml(values))


def cmd_version(opts: dict[str, Any], args: list[str]) -> None:
    require_none("version", args)
    if opts.get("short"):
        sys.stdout.write(HELM_VERSION + "\n")
        return
    if opts.get("template"):
        text = opts["template"].replace("{{.Version}}", HELM_VERSION).replace("{{ .Version }}", HELM_VERSION)
        sys.stdout.write(text)
        return
    sys.stdout.write(
        f'version.BuildInfo{{Version:"{HELM_VERSION}", GitCommit:"", GitTreeState:"", '
        f'GoVersion:"", HelmCLibrary:"helm-c {helm.helm_c_version()} via scripts/helm"}}\n'
    )


VERBS: dict[str, tuple[Callable[[dict[str, Any], list[str]], None], dict[str, tuple[str, str, Any]]]] = {
    "install": (cmd_install, INSTALL_FLAGS),
    "upgrade": (cmd_upgrade, UPGRADE_FLAGS),
    "uninstall": (cmd_uninstall, UNINSTALL_FLAGS),
    "delete": (cmd_uninstall, UNINSTALL_FLAGS),
    "template": (cmd_template, TEMPLATE_FLAGS),
    "lint": (cmd_lint, LINT_FLAGS),
    "list": (cmd_list, LIST_FLAGS),
    "ls": (cmd_list, LIST_FLAGS),
    "status": (cmd_status, STATUS_FLAGS),
    "history": (cmd_history, HISTORY_FLAGS),
    "get": (cmd_get, GET_VALUES_FLAGS),
    "version": (cmd_version, VERSION_FLAGS),
}


def main(argv: list[str]) -> int:
    try:
        # The verb is the first positional argument (global flags may come first).
        verb_index = None
        i = 0
        while i < len(argv):
            a = argv[i]
            if not a.startswith("-"):
                verb_index = i
                break
            flag = a.partition("=")[0]
            spec = GLOBAL_FLAGS.get(flag)
            if spec is None:
                raise CLIError(f"unknown flag: {flag}" if a.startswith("--") else f"unknown shorthand flag: '{a[1:2]}' in {a}")
            takes_value = spec[1] in ("str", "list") and "=" not in a
            attached = not a.startswith("--") and len(a) > 2  # -nNAMESPACE
            i += 2 if takes_value and not attached else 1
        if verb_index is None:
            sys.stdout.write(
                "The Kubernetes package manager (Helm " + HELM_VERSION + " via scripts/helm)\n\n"
                "Usage:\n  helm [command]\n\nAvailable Commands:\n  "
                + "\n  ".join(sorted(USAGE[v] for v in USAGE))
                + "\n"
            )
            return 0
        verb = argv[verb_index]
        if verb not in VERBS:
            raise CLIError(f'unknown command "{verb}" for "helm"\nRun \'helm --help\' for usage.')
        func, table_ = VERBS[verb]
        opts, args = parse_args(argv[:verb_index] + argv[verb_index + 1 :], table_)
        if opts.get("help"):
            key = "get values" if verb == "get" else {"delete": "uninstall", "ls": "list"}.get(verb, verb)
            sys.stdout.write(f"Usage:\n  {USAGE[key]}\n\nFlags:\n  " + "\n  ".join(sorted(set(table_))) + "\n")
            return 0
        func(opts, args)
        sys.stdout.flush()
        return 0
    except CLIError as err:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {err}\n")
        return 1
    except helm.HelmError as err:
        sys.stdout.flush()
        sys.stderr.write(f"Error: {err}\n")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # The Go runtime inside the library may keep threads alive; leave without waiting on them.
    os._exit(code)
