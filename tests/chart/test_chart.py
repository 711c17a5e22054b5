"""Tests of the Helm chart in charts/manifold (run by scripts/chart).

Helm itself runs in-process (helm-python-sdk: Helm 4's Go SDK as a shared library), so no
`helm` binary and no cluster are needed:

- lint and render the chart for the default values and for tests/chart/values-full.yaml;
- validate every rendered object against several Kubernetes versions' schemas
  (kubernetes-validate, strict: unknown fields are errors), and the ServiceMonitor, a CRD that
  kubernetes-validate has no schema for, by hand;
- check what the chart promises (probes, security context, the gateway config, checksum
  annotation by reload strategy, no secret in a ConfigMap, grace period vs shutdown_grace);
- check that bad values are refused, each for its own reason;
- run the rendered Deployment's container for real in Docker, as a kubelet would run it
  (image, args, env, the ConfigMap mounted read-only, user, read-only root, tmpfs for the
  emptyDir, capabilities dropped, no new privileges), wait for its probes to answer 200, stop
  it and check it exits 0; with reloadStrategy: hot, swap the ConfigMap volume as the kubelet
  does and check the running gateway serves the new config. The image is $MANIFOLD_IMAGE (default manifold:ci); set
  CHART_SKIP_DOCKER=1 to skip that part (scripts/chart --no-docker).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import kubernetes_validate.utils as kv_utils
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "manifold"
FULL_VALUES = yaml.safe_load((Path(__file__).parent / "values-full.yaml").read_text())
RELEASE, NAMESPACE = "mf", "gateways"

# The chart's minimum (Chart.yaml kubeVersion), a middle one, and the newest that
# kubernetes-validate ships schemas for.
KUBE_VERSIONS = ["1.30.0", "1.33.0", kv_utils.latest_version()]

# Kinds that come from CRDs: kubernetes-validate has no schema for them, so
# check_crd_object() checks their shape instead. Any other kind without a schema fails.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

# What the Secrets named in the values would hold, for the container run. None of these may
# ever appear in a rendered ConfigMap.
SEAL_KEY = "5e" * 32
TEST_SECRETS = {
    ("manifold-seal", "seal-key"): SEAL_KEY,
    ("manifold-api-keys", "ci"): "ci-key-7f3a9c",
    ("manifold-api-keys", "ops"): "ops-key-2b8d4e",
    ("github-token", "token"): "ghp_testtoken123",
    ("manifold-redis", "url"): "redis://:hunter2@redis.example:6379/0",
}

IMAGE = os.environ.get("MANIFOLD_IMAGE", "manifold:ci")
SKIP_DOCKER = os.environ.get("CHART_SKIP_DOCKER") == "1"


# ---------------------------------------------------------------------------------------------
# Rendering


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart, values: dict[str, Any] | None = None) -> dict[str, str]:
    """Rendered templates by path, as `helm template` would make them."""
    return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def gateway_config(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(objs, "ConfigMap")
    return yaml.safe_load(cm["data"]["gateway.yaml"])


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(ctr: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in ctr.get("env", [])}


def seconds(duration: str) -> float:
    """A gateway duration (10s, 1m30s, 500ms, or bare seconds) in seconds."""
    import re

    if duration.isdigit():
        return float(duration)
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+)(ms|s|m|h)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


VALUE_SETS = {
    "default": {},
    "full": FULL_VALUES,
    "hot-guarded": {"reloadStrategy": "hot", "hostGuard": {"enabled": True, "extraHosts": ["mcp.example.com"]},
                    "config": {"security": {"allowed_hosts": ["gw.example.com:8443"]}, "upstreams": {"demo": {"command": "manifold", "args": ["demo"]}}},
                    "podDisruptionBudget": {"enabled": True}},
}


# ---------------------------------------------------------------------------------------------
# Lint and schema validation of the rendered objects


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_is_clean(name):
    report = helm.lint(CHART, VALUE_SETS[name], strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == [], report
    # Severity 1 is informational ("icon is recommended"); warnings and errors are failures.
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_validates(chart, name, kube):
    objs = objects(render(chart, VALUE_SETS[name]))
    assert objs
    for obj in objs:
        try:
            kubernetes_validate.validate(obj, kube, strict=True)
        except kv_utils.SchemaNotFoundError:
            assert (obj["apiVersion"], obj["kind"]) in CRD_KINDS, f"no schema for {obj['kind']}"
            check_crd_object(obj, objs)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} on {kube}: {path}: {e.message}")


def check_crd_object(obj: dict[str, Any], objs: list[dict[str, Any]]) -> None:
    """The ServiceMonitor's shape, and that it really selects the chart's Service and port."""
    assert obj["kind"] == "ServiceMonitor"
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert obj["metadata"]["name"] and obj["metadata"]["namespace"] == NAMESPACE
    spec = obj["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    service = one(objs, "Service")
    labels = service["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in port_names
        assert endpoint["path"].startswith("/")
        for key in ("interval", "scrapeTimeout"):
            seconds(endpoint[key])
        assert seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"])


# ---------------------------------------------------------------------------------------------
# What the chart promises


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_probes_security_and_mounts(chart, name):
    objs = objects(render(chart, VALUE_SETS[name]))
    deployment = one(objs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    ctr = container(objs)

    assert ctr["args"] == ["serve", "--config", "/etc/manifold/gateway.yaml"]
    assert "command" not in ctr, "the image's entrypoint is the manifold binary"
    [port] = ctr["ports"]
    assert port["name"] == "http"
    assert ctr["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ctr["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert ctr["startupProbe"]["httpGet"]["path"] in ("/healthz", "/readyz")
    startup = ctr["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "npx upstreams are slow"

    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = ctr["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False
    assert "exec" not in json.dumps(ctr.get("lifecycle", {})), "no shell in the image"

    mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
    config_mount = mounts["/etc/manifold"]
    assert "subPath" not in config_mount, "subPath mounts never see ConfigMap updates"
    assert config_mount["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[config_mount["name"]]["configMap"]["name"] == one(objs, "ConfigMap")["metadata"]["name"]
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert env_of(ctr)["HOME"]["value"] == "/tmp"
    assert ctr["resources"]["requests"] and ctr["resources"]["limits"]["memory"]

    service = one(objs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    sa = [o for o in objs if o["kind"] == "ServiceAccount"]
    assert sa and sa[0]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_config_map_is_the_gateway_config(chart, name):
    objs = objects(render(chart, VALUE_SETS[name]))
    config = gateway_config(objs)
    port = container(objs)["ports"][0]["containerPort"]
    assert config["listen"] == f"0.0.0.0:{port}"
    assert config["upstreams"]
    guard = config["security"]["dns_rebinding_protection"]
    if VALUE_SETS[name].get("hostGuard", {}).get("enabled"):
        assert guard == "on"
        hosts = config["security"]["allowed_hosts"]
        service = one(objs, "Service")["metadata"]["name"]
        for host in (service, f"{service}.{NAMESPACE}", f"{service}.{NAMESPACE}.svc",
                     f"{service}.{NAMESPACE}.svc.cluster.local", "mcp.example.com", "gw.example.com:8443"):
            assert host in hosts
    else:
        assert guard == "off"


def test_default_listen_is_8080(chart):
    assert gateway_config(objects(render(chart)))["listen"] == "0.0.0.0:8080"


def test_checksum_annotation_follows_reload_strategy(chart):
    def annotations(values):
        return one(objects(render(chart, values)), "Deployment")["spec"]["template"]["metadata"].get("annotations") or {}

    rolled = annotations({"reloadStrategy": "roll"})
    assert "checksum/config" in rolled
    changed = annotations({"reloadStrategy": "roll", "config": {"upstreams": {"other": {"command": "manifold", "args": ["demo"]}}}})
    assert changed["checksum/config"] != rolled["checksum/config"], "a config change must roll the pods"
    assert "checksum/config" not in annotations({"reloadStrategy": "hot"})
    assert "checksum/config" not in annotations(FULL_VALUES)  # hot, too


def test_secrets_only_by_reference(chart):
    objs = objects(render(chart, FULL_VALUES))
    config = gateway_config(objs)
    assert config["seal_key"] == "${MANIFOLD_SEAL_KEY}"
    assert config["redis"] == "${MANIFOLD_REDIS_URL}"
    assert "redis" not in config["tasks"], "the top-level redis stores tasks too"
    assert config["tasks"]["redis_prefix"] == "manifold-prod"
    assert config["auth"]["api_keys"] == [
        {"name": "ci", "env": "MANIFOLD_API_KEY_CI", "scopes": ["mcp"]},
        {"name": "ops-team", "env": "MANIFOLD_API_KEY_OPS_TEAM", "scopes": ["mcp", "admin"]},
    ]
    env = env_of(container(objs))
    assert env["MANIFOLD_SEAL_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "manifold-seal", "key": "seal-key"}
    assert env["MANIFOLD_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "manifold-redis", "key": "url"}
    assert env["MANIFOLD_API_KEY_OPS_TEAM"]["valueFrom"]["secretKeyRef"] == {"name": "manifold-api-keys", "key": "ops"}
    assert container(objs)["envFrom"] == [{"secretRef": {"name": "manifold-upstream-credentials"}}]
    assert not [o for o in objs if o["kind"] == "Secret"], "the chart creates no Secret"

    # A password-less redis.url goes into the pod spec, never into the ConfigMap.
    objs = objects(render(chart, {"redis": {"url": "redis://canary-redis:6379/0"}}))
    assert "canary-redis" not in json.dumps(one(objs, "ConfigMap"))
    assert env_of(container(objs))["MANIFOLD_REDIS_URL"]["value"] == "redis://canary-redis:6379/0"


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_no_secret_value_in_any_config_map(chart, name):
    objs = objects(render(chart, VALUE_SETS[name]))
    for cm in (o for o in objs if o["kind"] == "ConfigMap"):
        text = json.dumps(cm)
        for secret in TEST_SECRETS.values():
            assert secret not in text
        # Anything that looks like a credential is a ${VAR} reference.
        def walk(node, key=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, k)
            elif isinstance(node, list):
                for v in node:
                    walk(v, key)
            elif isinstance(node, str) and any(w in key.lower() for w in ("seal_key", "token", "password", "secret", "authorization", "redis")):
                if key != "redis_prefix":
                    assert "${" in node, f"{key} in a ConfigMap must be a ${{VAR}} reference"
        walk(yaml.safe_load(cm["data"]["gateway.yaml"]))


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_grace_period_covers_shutdown(chart, name):
    objs = objects(render(chart, VALUE_SETS[name]))
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    grace = seconds(str(gateway_config(objs).get("shutdown_grace", "10s")))
    pre_stop = container(objs).get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    # shutdown_grace for requests in flight, then 5 s for stdio upstreams to exit.
    assert pod["terminationGracePeriodSeconds"] > pre_stop + grace + 5


def test_full_values_turn_everything_on(chart):
    objs = objects(render(chart, FULL_VALUES))
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                            "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"])
    deployment = one(objs, "Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert one(objs, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 1, "selector": deployment["spec"]["selector"]}
    default_pdb = one(objects(render(chart, {"podDisruptionBudget": {"enabled": True}})), "PodDisruptionBudget")
    assert default_pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in default_pdb["spec"]
    zero_pdb = one(objects(render(chart, {"podDisruptionBudget": {"enabled": True, "maxUnavailable": 0}})), "PodDisruptionBudget")
    assert zero_pdb["spec"]["maxUnavailable"] == 0
    netpol = one(objs, "NetworkPolicy")["spec"]
    assert netpol["podSelector"] == deployment["spec"]["selector"]
    assert netpol["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert len(netpol["ingress"][0]["from"]) == 2
    assert netpol["policyTypes"] == ["Ingress", "Egress"]
    ctr = container(objs)
    assert ctr["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert ctr["image"] == "registry.example/manifold:0.1.0"
    assert one(objs, "ServiceMonitor")["spec"]["endpoints"][0]["path"] == "/metrics"
    assert env_of(ctr)["GITHUB_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "github-token"
    # Off by default: none of the optional objects.
    default_kinds = sorted(o["kind"] for o in objects(render(chart)))
    assert default_kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]


def test_notes_say_how_to_reach_it(chart):
    notes = render(chart)["manifold/templates/NOTES.txt"]
    assert "port-forward svc/mf-manifold" in notes
    for path in ("/healthz", "/readyz", "/metrics", "/mcp"):
        assert path in notes


def test_app_version_matches_cargo(chart):
    cargo = (ROOT / "Cargo.toml").read_text()
    version = next(line.split('"')[1] for line in cargo.splitlines() if line.startswith("version"))
    assert chart.metadata["appVersion"] == version
    assert chart.metadata["apiVersion"] == "v2"


# ---------------------------------------------------------------------------------------------
# Bad values are refused, each for its own reason

WITH_REDIS_AND_KEY = {"redis": {"url": "redis://redis:6379/0"}, "sealKey": {"existingSecret": "seal"}}

BAD_VALUES = {
    "negative replicas": ({"replicaCount": -1}, "/replicacount"),
    "port not a number": ({"service": {"port": "abc"}}, "/service/port"),
    "port out of range": ({"containerPort": 70000}, "/containerport"),
    "unknown top-level key": ({"replicas": 3}, "additional properties 'replicas' not allowed"),
    "unknown nested key": ({"image": {"name": "x"}}, "additional properties 'name' not allowed"),
    "bad reload strategy": ({"reloadStrategy": "sometimes"}, "/reloadstrategy"),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullpolicy"),
    "redis url with a password": ({"redis": {"url": "redis://:pw@redis:6379"}}, "/redis/url"),
    "api key without its secret": ({"apiKeys": [{"name": "ci", "key": "ci"}]}, "missing property 'existingsecret'"),
    "3 replicas without redis": ({"replicaCount": 3}, "3 replicas need a shared redis"),
    "3 replicas without seal key": ({"replicaCount": 3, "redis": {"url": "redis://r:6379"}}, "3 replicas need the same seal key"),
    "hpa without redis": ({"autoscaling": {"enabled": True, "maxReplicas": 4}}, "4 replicas need a shared redis"),
    "hpa min over max": ({**WITH_REDIS_AND_KEY, "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 4}}, "minreplicas is more than"),
    "grace equal to shutdown_grace": ({"terminationGracePeriodSeconds": 10}, "terminationgraceperiodseconds (10) must exceed"),
    "grace under a long shutdown_grace": ({"config": {"shutdown_grace": "1m", "upstreams": {}}}, "config.shutdown_grace (60s)"),
    "grace under preStop + shutdown": ({"lifecycle": {"preStopSleepSeconds": 20}}, "must exceed lifecycle.prestopsleepseconds (20)"),
    "shutdown_grace not a duration": ({"config": {"shutdown_grace": "ten"}}, "is not a duration"),
    "listen in config": ({"config": {"listen": "0.0.0.0:1234"}}, "config.listen is set by the chart"),
    "seal key literal in config": ({"config": {"seal_key": SEAL_KEY}}, "config.seal_key must not hold the key"),
    "redis password in config": ({"config": {"tasks": {"redis": "redis://:pw@r:6379/0"}}}, "redis url in config holds a password"),
    "shared redis password in config": ({"config": {"redis": "redis://:pw@r:6379/0"}}, "redis url in config holds a password"),
    "shared redis twice": ({"redis": {"url": "redis://a:6379"}, "config": {"redis": "redis://b:6379"}}, "config.redis and redis.* are both set"),
    "3 replicas with a tasks-only redis": ({"replicaCount": 3, "config": {"tasks": {"redis": "${R}"}}}, "3 replicas need a shared redis"),
    "redis twice": ({"redis": {"url": "redis://a:6379", "existingSecret": "r"}}, "choose one"),
    "pdb both bounds": ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}}, "not both"),
    "guard refuses prometheus": ({"serviceMonitor": {"enabled": True}, "hostGuard": {"enabled": True}}, "host guard refuses"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_refused(chart, case):
    values, reason = BAD_VALUES[case]
    with pytest.raises(helm.HelmError) as refused:
        render(chart, values)
    assert reason in str(refused.value).lower(), str(refused.value)


def test_several_replicas_with_redis_and_seal_key_render(chart):
    objs = objects(render(chart, {"replicaCount": 3, **WITH_REDIS_AND_KEY}))
    assert one(objs, "Deployment")["spec"]["replicas"] == 3


# ---------------------------------------------------------------------------------------------
# The rendered container, run for real


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image():
    if SKIP_DOCKER:
        pytest.skip("CHART_SKIP_DOCKER=1: the container run is skipped")
    if shutil.which("docker") is None or docker("info", check=False, timeout=30).returncode != 0:
        pytest.fail("no Docker engine: start it (scripts/docker does) or set CHART_SKIP_DOCKER=1")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {IMAGE} not found: build it (scripts/docker) or set MANIFOLD_IMAGE")
    repository, _, tag = IMAGE.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = IMAGE, "latest"
    return repository, tag


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker_size(quantity: str) -> str:
    """A Kubernetes memory quantity (512Mi, 1Gi) as a Docker size (512m, 1g)."""
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    return quantity


def write_config_volume(directory: Path, data: dict[str, str]) -> None:
    """Lays out a ConfigMap volume as the kubelet does: files are symlinks through ..data,
    which points at a timestamped directory (what a ConfigMap update swaps)."""
    stamped = directory / "..2026_01_01_00_00_00.000000000"
    stamped.mkdir()
    for name, text in data.items():
        (stamped / name).write_text(text)
        (stamped / name).chmod(0o644)
    (directory / "..data").symlink_to(stamped.name)
    for name in data:
        (directory / name).symlink_to(f"..data/{name}")
    for d in (directory, stamped):
        d.chmod(0o755)


def docker_run_args(objs: list[dict[str, Any]], config_dir: Path, name: str) -> list[str]:
    """`docker run` arguments that run the Deployment's container the way its pod spec says."""
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    ctr = container(objs)
    pod_sc, sc = pod.get("securityContext", {}), ctr.get("securityContext", {})
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    assert user not in (None, 0), "the pod must not run as root"
    args = ["run", "--detach", "--name", name, "--network", "host", "--user", f"{user}:{group}"]
    if "fsGroup" in pod_sc:
        args += ["--group-add", str(pod_sc["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in sc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if "memory" in ctr.get("resources", {}).get("limits", {}):
        args += ["--memory", docker_size(ctr["resources"]["limits"]["memory"])]

    for env in ctr.get("env", []):
        if "value" in env:
            value = env["value"]
        else:
            ref = env["valueFrom"]["secretKeyRef"]
            value = TEST_SECRETS[(ref["name"], ref["key"])]
        args += ["--env", f"{env['name']}={value}"]
    assert not ctr.get("envFrom"), "envFrom is not simulated"

    volumes = {v["name"]: v for v in pod["volumes"]}
    configmaps = {o["metadata"]["name"]: o for o in objs if o["kind"] == "ConfigMap"}
    for mount in ctr["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            write_config_volume(config_dir, configmaps[volume["configMap"]["name"]]["data"])
            mode = "ro" if mount.get("readOnly") else "rw"
            args += ["--volume", f"{config_dir}:{mount['mountPath']}:{mode}"]
        elif "emptyDir" in volume:
            size = docker_size(volume["emptyDir"].get("sizeLimit", "64Mi"))
            args += ["--tmpfs", f"{mount['mountPath']}:rw,exec,mode=1777,size={size}"]
        else:
            pytest.fail(f"volume {mount['name']} of an unsimulated kind")

    image = ctr["image"]
    if ctr.get("command"):
        args += ["--entrypoint", ctr["command"][0], image, *ctr["command"][1:]]
    else:
        args.append(image)
    return args + list(ctr.get("args", []))


def get_status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def running(name: str) -> bool:
    return docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


CONTAINER_RUNS = {
    "default": {},
    # Secrets by reference (seal key, API keys), hot reload, Host guard on.
    "secrets-hot-guarded": {
        "reloadStrategy": "hot",
        "sealKey": {"existingSecret": "manifold-seal", "key": "seal-key"},
        "apiKeys": [{"name": "ci", "existingSecret": "manifold-api-keys", "key": "ci", "scopes": ["mcp"]}],
        "hostGuard": {"enabled": True},
    },
}


@pytest.mark.docker
@pytest.mark.parametrize("case", sorted(CONTAINER_RUNS))
def test_rendered_container_runs(chart, image, case, tmp_path):
    repository, tag = image
    port = free_port()
    values = {**CONTAINER_RUNS[case], "image": {"repository": repository, "tag": tag}, "containerPort": port}
    objs = objects(render(chart, values))
    ctr = container(objs)
    assert ctr["image"] == f"{repository}:{tag}"
    assert ctr["ports"][0]["containerPort"] == port
    probes = {kind: ctr[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    tmp_path.chmod(0o755)
    name = f"manifold-chart-test-{os.getpid()}-{case}"
    docker(*docker_run_args(objs, config_dir, name))
    try:
        deadline = time.monotonic() + 60
        answered: dict[str, int | None] = {}
        while time.monotonic() < deadline:
            answered = {kind: get_status(port, path) for kind, path in probes.items()}
            if all(status == 200 for status in answered.values()):
                break
            if not running(name):
                pytest.fail(f"the container exited early:\n{docker('logs', name, check=False).stderr[-4000:]}")
            time.sleep(0.5)
        else:
            pytest.fail(f"probes {probes} answered {answered} after 60 s:\n{docker('logs', name, check=False).stderr[-4000:]}")

        if case == "secrets-hot-guarded":
            # The API key from the "Secret" guards the MCP endpoint, and the Host guard
            # accepts the Service name.
            service = one(objs, "Service")["metadata"]["name"]
            request = urllib.request.Request(f"http://127.0.0.1:{port}/mcp", method="POST", data=b"{}",
                                             headers={"Host": f"{service}.{NAMESPACE}.svc", "Content-Type": "application/json",
                                                      "Accept": "application/json, text/event-stream"})
            with pytest.raises(urllib.error.HTTPError) as no_key:
                urllib.request.urlopen(request, timeout=5)
            assert no_key.value.code == 401
            request.add_header("Host", "evil.example")
            with pytest.raises(urllib.error.HTTPError) as bad_host:
                urllib.request.urlopen(request, timeout=5)
            assert bad_host.value.code == 421

        grace = one(objs, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        before = time.monotonic()
        docker("stop", "--time", str(grace), name, timeout=grace + 30)
        took = time.monotonic() - before
        state = json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)
        logs = docker("logs", name, check=False)
        assert state["ExitCode"] == 0, f"exit code {state['ExitCode']} after SIGTERM:\n{logs.stderr[-4000:]}"
        assert took < grace, f"stopping took {took:.1f}s, more than the grace period"
        for secret in TEST_SECRETS.values():
            assert secret not in logs.stdout + logs.stderr, "a secret value reached the logs"
    finally:
        docker("rm", "--force", name, check=False)


@pytest.mark.docker
def test_full_config_passes_manifold_check(chart, image, tmp_path):
    """The gateway itself accepts the config the chart renders from every option."""
    repository, tag = image
    objs = objects(render(chart, {**FULL_VALUES, "image": {"repository": repository, "tag": tag}}))
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    tmp_path.chmod(0o755)
    write_config_volume(config_dir, one(objs, "ConfigMap")["data"])
    env = []
    for e in container(objs)["env"]:
        value = e.get("value") or TEST_SECRETS[(e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])]
        env += ["--env", f"{e['name']}={value}"]
    result = docker("run", "--rm", "--network", "none", "--user", "65532:65532", "--read-only",
                    "--volume", f"{config_dir}:/etc/manifold:ro", *env, f"{repository}:{tag}",
                    "check", "--config", "/etc/manifold/gateway.yaml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_example_in_the_docs_renders(chart):
    """docs/deployment.md's install example is values the chart accepts, as documented."""
    doc = (ROOT / "docs" / "deployment.md").read_text()
    example = doc.split("cat > values.yaml <<'YAML'\n", 1)[1].split("\nYAML\n", 1)[0]
    objs = objects(render(chart, yaml.safe_load(example)))
    config = gateway_config(objs)
    assert config["seal_key"] == "${MANIFOLD_SEAL_KEY}"
    assert config["redis"] == "${MANIFOLD_REDIS_URL}"
    assert one(objs, "Deployment")["spec"]["replicas"] == 2


def swap_config_volume(directory: Path, data: dict[str, str]) -> None:
    """Updates a ConfigMap volume as the kubelet does: a new timestamped directory, then
    ..data renamed over in one step (the files themselves are never rewritten)."""
    stamped = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamped.mkdir(mode=0o755)
    for name, text in data.items():
        (stamped / name).write_text(text)
        (stamped / name).chmod(0o644)
    (directory / "..data_tmp").symlink_to(stamped.name)
    os.replace(directory / "..data_tmp", directory / "..data")


@pytest.mark.docker
def test_hot_reload_sees_the_kubelet_swap(chart, image, tmp_path):
    """reloadStrategy: hot. A config change leaves the pod template as it was (so Kubernetes
    does not restart the pod), and the running gateway picks up the new ConfigMap when the
    kubelet swaps it in."""
    repository, tag = image
    port = free_port()
    base = {"reloadStrategy": "hot", "image": {"repository": repository, "tag": tag}, "containerPort": port}
    # A second demo server: its tools are prefixed, its resources (same URIs) left out.
    second = {"command": "manifold", "args": ["demo"], "resources": {"deny": ["*"]}}
    changed_config = {"upstreams": {"demo": {"command": "manifold", "args": ["demo"]}, "second": second}}
    before = objects(render(chart, base))
    after = objects(render(chart, {**base, "config": changed_config}))
    template = lambda objs: one(objs, "Deployment")["spec"]["template"]
    assert template(before) == template(after), "a config change must not touch the pod template"
    assert gateway_config(before) != gateway_config(after)

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    name = f"manifold-chart-test-{os.getpid()}-reload"
    docker(*docker_run_args(before, config_dir, name))
    try:
        def readyz() -> dict[str, Any]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as e:
                return json.loads(e.read())
            except OSError:
                return {}

        def wait_for(predicate, what: str) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if predicate(readyz()):
                    return
                if not running(name):
                    break
                time.sleep(0.5)
            pytest.fail(f"{what} within 60 s; /readyz: {readyz()}\n{docker('logs', name, check=False).stderr[-4000:]}")

        wait_for(lambda r: r.get("ready") is True and set(r["upstreams"]) == {"demo"}, "ready with the demo upstream")
        started_at = docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout
        swap_config_volume(config_dir, one(after, "ConfigMap")["data"])
        wait_for(lambda r: r.get("ready") is True and set(r.get("upstreams", {})) == {"demo", "second"},
                 "the swapped config's second upstream ready")
        assert docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout == started_at, "the container restarted"
        docker("stop", "--time", "30", name, timeout=60)
        assert json.loads(docker("inspect", "-f", "{{json .State}}", name).stdout)["ExitCode"] == 0
    finally:
        docker("rm", "--force", name, check=False)


def test_every_value_is_in_the_docs_table():
    """docs/deployment.md's values table names every value the schema accepts (a value, or
    a parent that the row describes as a whole)."""
    import re

    doc = (ROOT / "docs" / "deployment.md").read_text()
    table = doc.split("### Values", 1)[1].split("\n\n", 2)[1]
    documented = set()
    for row in table.splitlines()[2:]:
        names = re.findall(r"`([^`]+)`", row.split("|")[1])
        prefix = names[0].rsplit(".", 1)[0] + "." if "." in names[0] else ""
        for n in names:
            documented.add((n if "." in n else prefix + n).removesuffix(".*"))

    def leaves(schema, path=""):
        props = schema.get("properties")
        if not props:
            yield path
            return
        for key, sub in props.items():
            yield from leaves(sub, f"{path}.{key}" if path else key)

    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = []
    for leaf in leaves(schema):
        parts = leaf.split(".")
        if leaf != "global" and not any(".".join(parts[:i]) in documented for i in range(1, len(parts) + 1)):
            missing.append(leaf)
    assert missing == [], f"values missing from the docs table: {missing}"
