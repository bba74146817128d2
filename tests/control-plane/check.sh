#!/usr/bin/env bash
# The real control plane of scripts/test-cluster, used as users use a cluster: kubectl (with
# validation on), Pod Security `restricted`, the RBAC authorizer, the CronJob and Job
# controllers, and helm v4 and v3 install/upgrade/uninstall of tests/helm/testdata/sample.
# One cluster for the whole file, in a temporary state dir; run by scripts/run-tests.
# Each step fails on the first wrong answer, printing what the server said.
set -euo pipefail
root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)
cd "$root"
export ITER8_TEST_CLUSTER_DIR
ITER8_TEST_CLUSTER_DIR=$(mktemp -d /tmp/iter8-control-plane.XXXXXX)
cleanup() {
  bash scripts/test-cluster down >/dev/null 2>&1 || true
  rm -rf "$ITER8_TEST_CLUSTER_DIR"
}
trap cleanup EXIT
kubectl=$(bash scripts/tools path kubectl)
helm4=$(bash scripts/tools path helm4)
helm3=$(bash scripts/tools path helm3)
ns=cp-check
passed=0

fail() {
  echo "FAILED: $step: $*" >&2
  echo "control-plane: $passed passed, 1 failed"
  echo "--- cluster logs (last lines)" >&2
  bash scripts/test-cluster logs >&2 || true
  exit 1
}
ok() { echo "ok: $step"; passed=$((passed + 1)); }
k() { "$kubectl" "$@" 2>&1; }
# expect_fail PATTERN CMD...: CMD must fail and say PATTERN (a grep -E pattern)
expect_fail() {
  local pat=$1 out; shift
  if out=$("$@" 2>&1); then fail "succeeded, but should have been refused: $out"; fi
  grep -qE -- "$pat" <<<"$out" || fail "refused, but not with /$pat/: $out"
}
# eventually SECONDS CMD...: CMD succeeds within SECONDS (polled every 0.5 s)
eventually() {
  local secs=$1 i; shift
  for ((i = 0; i < secs * 2; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  fail "not true after ${secs}s: $*"
}

step="scripts/test-cluster up (etcd, kube-apiserver, kube-controller-manager, kube-scheduler)"
start=$(date +%s%N)
# `@host` runs a container's command as-is, should the node agent be there to run pods.
up_out=$(bash scripts/test-cluster up --image '*=@host' 2>&1) || fail "$up_out"
eval "$(grep '^export KUBECONFIG=' <<<"$up_out")"
[ -n "${KUBECONFIG:-}" ] || fail "no export KUBECONFIG line in: $up_out"
echo "   up in $((($(date +%s%N) - start) / 1000000)) ms"
again=$(bash scripts/test-cluster up 2>&1) || fail "a second up failed: $again"
grep -q "^export KUBECONFIG=$KUBECONFIG\$" <<<"$again" || fail "a second up did not print the same KUBECONFIG: $again"
ok

step="kubectl version: the server is kube-apiserver built from source"
out=$(k version -o json) || fail "$out"
grep -q '"gitVersion": "v1.37' <<<"$out" || fail "$out"
ok

step="kubectl create namespace, service clusterip (protobuf, ClusterIP allocation)"
out=$(k create namespace $ns) || fail "$out"
out=$(k create service clusterip httpbin --tcp=80:80 -n $ns) || fail "$out"
ip=$(k get service httpbin -n $ns -o 'jsonpath={.spec.clusterIP}') || fail "$ip"
[[ $ip == 127.96.* ]] || fail "ClusterIP '$ip' is not from the loopback service range"
ok

step="kubectl apply (validation on) of a restricted Deployment: the real controllers make its ReplicaSet and Pod"
out=$(k apply -n $ns -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: httpbin
        image: mccutchen/go-httpbin:v2
        ports: [{containerPort: 8080}]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
EOF
) || fail "$out"
grep -q 'deployment.apps/httpbin created' <<<"$out" || fail "$out"
eventually 30 bash -c "[ -n \"\$('$kubectl' get replicaset -n $ns -l app=httpbin -o name)\" ]"
eventually 30 bash -c "[ -n \"\$('$kubectl' get pods -n $ns -l app=httpbin -o name)\" ]"
ok

step="kubectl apply of invalid objects: refused by the server's field validation and object validation"
expect_fail 'unknown field "spec.replicaz"' "$kubectl" apply -n $ns -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: typo}
spec:
  replicaz: 1
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec: {containers: [{name: c, image: busybox}]}
EOF
expect_fail 'is invalid: spec.template.metadata.labels: Invalid value.*does not match template' "$kubectl" apply -n $ns -f - <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: mismatch}
spec:
  selector: {matchLabels: {app: one}}
  template:
    metadata: {labels: {app: other}}
    spec: {containers: [{name: c, image: busybox}]}
EOF
ok

step="a pod without a restricted securityContext is refused by Pod Security admission"
expect_fail 'forbidden: violates PodSecurity "restricted:latest"' "$kubectl" run bad --image=busybox -n $ns -- true
ok

step="a ServiceAccount's token kubeconfig: allowed where its Role reaches, 403 from RBAC elsewhere"
out=$(k create serviceaccount reader -n $ns) || fail "$out"
out=$(k create role cm-reader --verb=get,list --resource=configmaps -n $ns) || fail "$out"
out=$(k create rolebinding cm-reader --role=cm-reader --serviceaccount=$ns:reader -n $ns) || fail "$out"
sa_kc=$(bash scripts/test-cluster sa-kubeconfig $ns reader) || fail "$sa_kc"
out=$("$kubectl" --kubeconfig "$sa_kc" get configmaps -n $ns 2>&1) || fail "the Role's own resource: $out"
expect_fail 'secrets is forbidden: User "system:serviceaccount:cp-check:reader" cannot list resource "secrets" in API group "" in the namespace "cp-check"' \
  "$kubectl" --kubeconfig "$sa_kc" get secrets -n $ns
ok

step="kubectl create job --from=cronjob/NAME: a Job owned by the CronJob, run by the real Job controller"
out=$(k create cronjob loop --image=busybox --schedule='*/30 * * * *' -n $ns -- true) || fail "$out"
out=$(k create job loop-manual --from=cronjob/loop -n $ns) || fail "$out"
owner=$(k get job loop-manual -n $ns -o 'jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')
[ "$owner" = CronJob/loop ] || fail "owner of job loop-manual: '$owner'"
# The Job controller acts on it: its pod (no securityContext) is refused by Pod Security.
eventually 30 bash -c "'$kubectl' get events -n $ns --field-selector involvedObject.name=loop-manual,reason=FailedCreate -o jsonpath='{.items[*].message}' | grep -q 'violates PodSecurity'"
ok

# helm_cycle NAME HELM RELEASE: install, upgrade and uninstall tests/helm/testdata/sample
helm_cycle() {
  local name=$1 helm=$2 rel=$3 out sel
  sel=app.kubernetes.io/instance=$rel
  step="$name install of tests/helm/testdata/sample"
  out=$("$helm" install "$rel" tests/helm/testdata/sample -n $ns --set message=first 2>&1) || fail "$out"
  [ "$(k get secret "$rel-config" -n $ns -o 'jsonpath={.data.message}' | base64 -d)" = first ] || fail "Secret $rel-config"
  out=$(k get job "$rel-job-1" -n $ns -o name) || fail "$out"
  out=$("$helm" status "$rel" -n $ns 2>&1) || fail "$out"
  grep -q 'STATUS: deployed' <<<"$out" || fail "$out"
  ok
  step="$name upgrade: new values, a new Job, the old one removed"
  out=$("$helm" upgrade "$rel" tests/helm/testdata/sample -n $ns --set message=second 2>&1) || fail "$out"
  [ "$(k get secret "$rel-config" -n $ns -o 'jsonpath={.data.message}' | base64 -d)" = second ] || fail "Secret $rel-config after upgrade"
  out=$(k get job "$rel-job-2" -n $ns -o name) || fail "$out"
  eventually 30 bash -c "! '$kubectl' get job '$rel-job-1' -n $ns >/dev/null 2>&1"
  [ "$("$helm" history "$rel" -n $ns -o json | grep -o '"revision":[0-9]*' | tail -n 1)" = '"revision":2' ] || fail "helm history"
  ok
  step="$name uninstall: nothing of the release is left"
  out=$("$helm" uninstall "$rel" -n $ns --wait --timeout 60s 2>&1) || fail "$out"
  eventually 30 bash -c "[ -z \"\$('$kubectl' get jobs,pods,secrets,serviceaccounts,roles,rolebindings -n $ns -l $sel -o name)\" ]"
  [ -z "$(k get secrets -n $ns -l "owner=helm,name=$rel" -o name)" ] || fail "helm's release records are left"
  ok
}
helm_cycle "helm v4 ($("$helm4" version --short))" "$helm4" s4
helm_cycle "helm v3 ($("$helm3" version --short))" "$helm3" s3

step="scripts/test-cluster down stops every component and removes the state"
pids=$(cat "$ITER8_TEST_CLUSTER_DIR"/pids/*)
start=$(date +%s%N)
out=$(bash scripts/test-cluster down 2>&1) || fail "$out"
echo "   down in $((($(date +%s%N) - start) / 1000000)) ms"
for p in $pids; do ! kill -0 "$p" 2>/dev/null || fail "process $p still runs"; done
[ ! -e "$ITER8_TEST_CLUSTER_DIR" ] || fail "$ITER8_TEST_CLUSTER_DIR is still there"
ok

echo "control-plane: $passed passed, 0 failed"
