"""deploy/ agrees with the configuration: the compose file, the Kubernetes manifests, Prometheus and
Grafana provisioning and the Dockerfiles are parsed (no network, no containers) and checked against
the Config each service loads from deploy/config.toml plus its own environment."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
import shutil
import subprocess
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath

import pytest
import yaml

from entropylong_streamer import registry
from entropylong_streamer.config import Config, load_config
from entropylong_streamer.deploy_manifests import AUTOSCALING, autoscaling
from entropylong_streamer.status import stage_groups, topic_partitions

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.gpu"]  # (their .dockerignore files beside them)
CONFIG = DEPLOY / "config.toml"
K8S = DEPLOY / "k8s"
CONFIG_MOUNT = "/etc/elong/config.toml"  # where every container finds deploy/config.toml
GPU_STAGES = {"entropy", "verify", "trainer"}
LM_STAGES = {"entropy", "verify"}  # the model's stages: vLLM on a GPU
NOT_AUTOSCALED = {s.name for s in registry.STAGES if not s.scalable}
SECRET_ENV = {"ELONG_KAFKA__SASL_PASSWORD", "ELONG_MILVUS__TOKEN"}
FROM_SECRET = "value-from-a-secret"  # stands in for a secretKeyRef's value when loading a config
OWN_IMAGES = ("entropylong-streamer", "entropylong-streamer-gpu")
TOPICS_CALL = f"ensure_pipeline_topics(load_config('{CONFIG_MOUNT}'))"
# major.minor.patch (a variant suffix allowed: 3.11.13-slim-bookworm), or MinIO's dated releases;
# never a moving tag such as latest, 3.11 or 3.11-slim
PINNED_TAG = re.compile(r"^(v?\d+\.\d+\.\d+([-.+][0-9A-Za-z.-]+)?|RELEASE\.\d{4}-\d\d-\d\dT[\d-]+Z)$")


# ---------------------------------------------------------------------------------------------
# loading


def load_yaml(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


@cache
def compose() -> dict:
    (doc,) = load_yaml(DEPLOY / "compose.yaml")
    return doc


@cache
def k8s_docs() -> tuple[dict, ...]:
    files = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    return tuple(d for p in files for d in load_yaml(p))


def k8s(kind: str) -> list[dict]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def k8s_named(kind: str, name: str) -> dict:
    (doc,) = [d for d in k8s(kind) if d["metadata"]["name"] == name]
    return doc


def base_config() -> Config:
    return load_config(CONFIG, environ={})


def expected_groups() -> dict[str, tuple[str, str]]:
    """stage -> (input topic, consumer group), as deploy/config.toml gives them."""
    return {stage: (topic, group) for stage, topic, group in stage_groups(base_config())}


def groups_hint() -> str:
    return ("the consumer groups carry the stages' config versions, which deploy/config.toml changed "
            "(a threshold?): run python -m entropylong_streamer.generated_files")


def compose_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def compose_argv(svc: dict) -> list[str]:
    def words(v):
        return shlex.split(v) if isinstance(v, str) else list(v or [])

    return (words(svc.get("entrypoint")) or ["elong"]) + words(svc.get("command"))


def compose_workers() -> dict[str, list[tuple[str, dict]]]:
    """stage -> [(service name, service)] of every service running `elong worker STAGE`."""
    out: dict[str, list[tuple[str, dict]]] = {}
    for name, svc in compose()["services"].items():
        argv = compose_argv(svc)
        if argv[:2] == ["elong", "worker"]:
            out.setdefault(argv[2], []).append((name, svc))
    return out


def compose_worker(stage: str) -> tuple[str, dict]:
    (found,) = compose_workers()[stage]
    return found


def compose_config(svc: dict) -> Config:
    return load_config(CONFIG, environ=compose_env(svc))


def containers(doc: dict, init: bool = True) -> list[dict]:
    spec = pod_spec(doc)
    return list(spec.get("containers", [])) + (list(spec.get("initContainers", [])) if init else [])


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def k8s_env(container: dict) -> dict[str, str]:
    """The container's environment: its ConfigMaps (envFrom) then its env entries; a value from a
    Secret reads as FROM_SECRET."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"{container['name']}: envFrom {source} (ConfigMaps only)"
        env.update({k: str(v) for k, v in k8s_named("ConfigMap", source["configMapRef"]["name"])["data"].items()})
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            assert "secretKeyRef" in entry["valueFrom"], f"{container['name']}: {entry}"
            env[entry["name"]] = FROM_SECRET
    return env


def k8s_argv(container: dict) -> list[str]:
    return list(container.get("command") or ["elong"]) + list(container.get("args") or [])


def k8s_workers() -> dict[str, list[tuple[dict, dict]]]:
    """stage -> [(Deployment, worker container)] of every container running `elong worker STAGE`."""
    out: dict[str, list[tuple[dict, dict]]] = {}
    for dep in k8s("Deployment"):
        for c in containers(dep, init=False):
            argv = k8s_argv(c)
            if argv[:2] == ["elong", "worker"]:
                out.setdefault(argv[2], []).append((dep, c))
    return out


def k8s_worker(stage: str) -> tuple[dict, dict]:
    (found,) = k8s_workers()[stage]
    return found


def k8s_config(container: dict) -> Config:
    return load_config(CONFIG, environ=k8s_env(container))


def image_refs() -> list[tuple[str, str]]:
    """(where, image) for every image the deployment uses."""
    refs = [(f"compose {n}", s["image"]) for n, s in compose()["services"].items()]
    refs += [(f"k8s {d['kind']} {d['metadata']['name']}/{c['name']}", c["image"])
             for d in k8s_docs() if d["kind"] in ("Deployment", "Job") for c in containers(d)]
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if words and words[0].upper() == "FROM":
                refs.append((dockerfile.name, next(w for w in words[1:] if not w.startswith("--"))))
    return refs


# ---------------------------------------------------------------------------------------------
# parsing and structure


def test_every_yaml_file_parses_and_the_manifests_are_complete():
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 10
    for path in files:
        assert load_yaml(path), f"{path} is empty"
    kinds = {d["kind"] for d in k8s_docs()}
    assert {"Namespace", "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Job", "ScaledObject",
            "TriggerAuthentication", "PodMonitor"} <= kinds
    (namespace,) = k8s("Namespace")
    for doc in k8s_docs():
        assert doc.get("apiVersion") and doc["metadata"].get("name"), doc
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == namespace["metadata"]["name"], doc["metadata"]
    kustomization = load_yaml(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert kustomization["namespace"] == namespace["metadata"]["name"]


def test_the_configmap_ships_deploy_config_toml_and_every_service_agrees_on_the_versions():
    assert k8s_named("ConfigMap", "elong-config")["data"]["config.toml"] == CONFIG.read_text(), (
        "deploy/k8s/config.yaml's config.toml differs from deploy/config.toml: copy the file into it")
    cfg = base_config()  # loads: every key of the file is valid
    want = stage_groups(cfg)
    configs = {f"compose {n}": compose_config(s) for ss in compose_workers().values() for n, s in ss}
    configs |= {f"k8s {d['metadata']['name']}": k8s_config(c) for cs in k8s_workers().values() for d, c in cs}
    for name, c in configs.items():  # env may change engines and addresses, never a stage version
        assert stage_groups(c) == want, f"{name}: its environment changes a stage version"
        assert c.data_dir == cfg.data_dir


def test_compose_runs_one_worker_per_stage_with_the_config_mounted():
    stages = [s for s, _, _ in stage_groups(base_config())]
    workers = compose_workers()
    assert sorted(workers) == sorted(stages), "compose: a stage without a worker, or a worker of no stage"
    for stage in stages:
        assert len(workers[stage]) == 1, f"compose: {len(workers[stage])} services run the {stage} worker"
        name, svc = workers[stage][0]
        argv = compose_argv(svc)
        assert argv[3:5] == ["--config", CONFIG_MOUNT], f"compose {name}: {argv}"
        mounts = {}
        for v in svc["volumes"]:
            src, dst = v.split(":")[:2]
            mounts[dst] = src
        assert (DEPLOY / mounts[CONFIG_MOUNT]).resolve() == CONFIG, f"compose {name}: config not mounted"
    for dockerfile in DOCKERFILES:  # compose relies on the images' entrypoint
        assert 'ENTRYPOINT ["elong"]' in dockerfile.read_text().splitlines(), dockerfile.name


def test_kubernetes_runs_one_deployment_per_stage_with_the_config_mounted():
    stages = [s for s, _, _ in stage_groups(base_config())]
    workers = k8s_workers()
    assert sorted(workers) == sorted(stages), "k8s: a stage without a Deployment, or a worker of no stage"
    for stage in stages:
        assert len(workers[stage]) == 1, f"k8s: {len(workers[stage])} Deployments run the {stage} worker"
        dep, c = workers[stage][0]
        assert len(containers(dep, init=False)) == 1, dep["metadata"]["name"]
        assert k8s_argv(c)[3:5] == ["--config", CONFIG_MOUNT], f"{dep['metadata']['name']}: {k8s_argv(c)}"
        assert_config_mounted(dep, c)


def assert_config_mounted(doc: dict, c: dict) -> None:
    volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
    for m in c["volumeMounts"]:
        cm = volumes[m["name"]].get("configMap")
        if cm and cm["name"] == "elong-config":
            items = {i["path"]: i["key"] for i in cm.get("items", [])} or {"config.toml": "config.toml"}
            files = {str(PurePosixPath(m["mountPath"]) / p): k for p, k in items.items()}
            assert files.get(CONFIG_MOUNT) == "config.toml", f"{doc['metadata']['name']}/{c['name']}: {files}"
            return
    raise AssertionError(f"{doc['metadata']['name']}/{c['name']}: the elong-config ConfigMap is not mounted")


# ---------------------------------------------------------------------------------------------
# images


def test_every_image_is_pinned_to_a_version():
    refs = image_refs()
    assert any(w.startswith("Dockerfile") for w, _ in refs) and len(refs) > 10
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for where, ref in refs:
        name, _, digest = ref.partition("@")
        tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
        if digest:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{where}: {ref}"
            continue
        assert tag and PINNED_TAG.match(tag), f"{where}: {ref} is not pinned to a version (or a digest)"
        if name.rpartition(":")[0].rpartition("/")[2] in OWN_IMAGES:
            assert tag == version, f"{where}: {ref}: the project's images are tagged with its version {version}"


def test_the_gpu_stages_run_the_gpu_image_and_the_others_the_cpu_image():
    for stage in (s for s, _, _ in stage_groups(base_config())):
        want = OWN_IMAGES[1] if stage in GPU_STAGES else OWN_IMAGES[0]
        name, svc = compose_worker(stage)
        dep, c = k8s_worker(stage)
        for where, ref in ((f"compose {name}", svc["image"]), (dep["metadata"]["name"], c["image"])):
            assert ref.split("@")[0].rpartition(":")[0].rpartition("/")[2] == want, f"{where}: {ref}"
        dockerfile = svc["build"]["dockerfile"]
        assert dockerfile == ("deploy/Dockerfile.gpu" if stage in GPU_STAGES else "deploy/Dockerfile"), name


# ---------------------------------------------------------------------------------------------
# autoscaling


def test_the_committed_autoscaling_manifest_is_the_one_the_registry_generates():
    committed = AUTOSCALING.read_text()
    assert autoscaling(committed, base_config()) == committed, groups_hint()
    stale = re.sub(r"consumerGroup: elong\.verify-[0-9a-f]{12}", "consumerGroup: elong.verify-000000000000", committed)
    assert stale != committed and autoscaling(stale, base_config()) == committed


def test_keda_scales_the_stateless_stages_on_their_exact_consumer_groups():
    cfg = base_config()
    expected = expected_groups()
    partitions = topic_partitions(cfg)
    scaled = {}
    for so in k8s("ScaledObject"):
        target = so["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment", so["metadata"]["name"]
        dep = k8s_named("Deployment", target["name"])
        (c,) = containers(dep, init=False)
        stage = k8s_argv(c)[2]
        assert stage not in scaled, f"{stage} has two ScaledObjects"
        scaled[stage] = so
        (trigger,) = so["spec"]["triggers"]
        assert trigger["type"] == "kafka", so["metadata"]["name"]
        meta = trigger["metadata"]
        topic, group = expected[stage]
        assert (meta["consumerGroup"], meta["topic"]) == (group, topic), (
            f"ScaledObject {so['metadata']['name']}: group {meta['consumerGroup']}, topic {meta['topic']}; "
            + groups_hint())
        assert meta["bootstrapServers"] == k8s_config(c).kafka.bootstrap_servers, so["metadata"]["name"]
        assert int(meta["lagThreshold"]) > 0
        assert meta.get("offsetResetPolicy") == "earliest"  # a new group reads from the start, as a worker does
        if "authenticationRef" in trigger:
            k8s_named("TriggerAuthentication", trigger["authenticationRef"]["name"])
        lo, hi = so["spec"].get("minReplicaCount", 0), so["spec"]["maxReplicaCount"]
        assert 1 <= lo <= hi <= partitions[topic], (
            f"{stage}: replicas {lo}..{hi}, but {topic} has {partitions[topic]} partitions")
    stateless = set(expected) - NOT_AUTOSCALED
    assert set(scaled) == stateless, f"autoscaled {sorted(scaled)}, want exactly {sorted(stateless)}"
    assert not k8s("HorizontalPodAutoscaler"), "autoscale through the KEDA ScaledObjects only"
    for stage in NOT_AUTOSCALED:
        dep, _ = k8s_worker(stage)
        assert dep["spec"]["replicas"] == 1, f"{stage} must run exactly one replica"
        assert dep["spec"]["strategy"]["type"] == "Recreate", f"{stage}: never two replicas, even in a rollout"
    for stage in stateless:
        dep, _ = k8s_worker(stage)
        assert "replicas" not in dep["spec"], f"{stage}: replicas belong to its ScaledObject"


def test_pack_and_trainer_share_the_data_volume():
    cfg = base_config()
    data_dir = str(cfg.data_dir)
    named = {}
    for stage in NOT_AUTOSCALED:
        name, svc = compose_worker(stage)
        mounts = {v.split(":")[1]: v.split(":")[0] for v in svc["volumes"]}
        assert mounts[data_dir] in compose()["volumes"], f"compose {name}: {data_dir} is not a named volume"
        named[stage] = mounts[data_dir]
    assert len(set(named.values())) == 1, f"compose: pack and trainer mount different volumes {named}"
    claims = {}
    for stage in NOT_AUTOSCALED:
        dep, c = k8s_worker(stage)
        volumes = {v["name"]: v for v in pod_spec(dep)["volumes"]}
        (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == data_dir]
        claims[stage] = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
    assert len(set(claims.values())) == 1, f"k8s: pack and trainer mount different claims {claims}"
    pvc = k8s_named("PersistentVolumeClaim", next(iter(claims.values())))
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]


# ---------------------------------------------------------------------------------------------
# GPUs


def test_gpus_are_requested_exactly_for_entropy_verify_and_trainer():
    for stage in (s for s, _, _ in stage_groups(base_config())):
        name, svc = compose_worker(stage)
        devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        gpus = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])]
        assert bool(gpus) == (stage in GPU_STAGES), f"compose {name}: GPU reservation {devices}"
        if gpus:
            assert gpus[0].get("count") == 1 or gpus[0].get("device_ids"), f"compose {name}: {gpus}"
        dep, c = k8s_worker(stage)
        spec = pod_spec(dep)
        limit = (c.get("resources", {}).get("limits") or {}).get("nvidia.com/gpu")
        name = dep["metadata"]["name"]
        if stage in GPU_STAGES:
            assert limit == 1, f"{name}: limits nvidia.com/gpu {limit}"
            assert any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", [])), name
            assert spec.get("nodeSelector") or spec.get("affinity", {}).get("nodeAffinity"), name
        else:
            assert limit is None, f"{name}: a CPU stage asks for a GPU"
            assert not any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", [])), name
        for cfg, where in ((compose_config(svc), f"compose {stage}"), (k8s_config(c), name)):
            if stage in LM_STAGES:
                assert (cfg.model.engine, cfg.model.device) == ("vllm", "cuda"), where
            else:
                assert cfg.model.device != "cuda", where
            assert (cfg.trainer.device == "cuda") == (stage == "trainer"), where


# ---------------------------------------------------------------------------------------------
# metrics, Prometheus, Grafana


def prometheus_targets() -> set[str]:
    (doc,) = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    return {t for job in doc["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}


def test_prometheus_scrapes_every_compose_worker_on_its_metrics_port():
    targets = prometheus_targets()
    for stage in (s for s, _, _ in stage_groups(base_config())):
        name, svc = compose_worker(stage)
        cfg = compose_config(svc)
        assert cfg.metrics.port, f"compose {name}: metrics off (metrics.port 0)"
        assert cfg.metrics.host == "0.0.0.0", f"compose {name}: metrics bound to {cfg.metrics.host}"
        assert f"{name}:{cfg.metrics.port}" in targets, f"prometheus.yml does not scrape {name}:{cfg.metrics.port}"
        assert not svc.get("ports"), f"compose {name}: a worker publishes no host port"
        health = " ".join(svc.get("healthcheck", {}).get("test", []))
        for port in re.findall(r":(\d+)/metrics", health):
            assert int(port) == cfg.metrics.port, f"compose {name}: healthcheck on port {port}"
    prom = [s for s in compose()["services"].values() if s["image"].startswith("prom/prometheus:")]
    assert len(prom) == 1
    assert any(v.split(":")[0] == "./prometheus/prometheus.yml" for v in prom[0]["volumes"])


def test_promtool_accepts_the_prometheus_config_and_its_alert_rules():
    promtool = ROOT / ".venv" / "prometheus" / "usr" / "bin" / "promtool"
    found = str(promtool) if promtool.exists() else shutil.which("promtool")
    if not found:
        pytest.skip("promtool not installed (bash deploy/dev.sh test installs it)")
    run = subprocess.run([found, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    run = subprocess.run([found, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr


def test_kubernetes_workers_expose_metrics_to_the_podmonitor():
    (monitor,) = k8s("PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    policy_ports = {p["port"] for np in k8s("NetworkPolicy") for rule in np["spec"].get("ingress", [])
                    for p in rule.get("ports", [])}
    for stage in (s for s, _, _ in stage_groups(base_config())):
        dep, c = k8s_worker(stage)
        name = dep["metadata"]["name"]
        cfg = k8s_config(c)
        assert cfg.metrics.port and cfg.metrics.host == "0.0.0.0", f"{name}: metrics {cfg.metrics}"
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"the PodMonitor does not select {name}"
        named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        assert any(named.get(p) == cfg.metrics.port for p in ports), f"{name}: ports {named}"
        assert not policy_ports or cfg.metrics.port in policy_ports, f"{name}: NetworkPolicy ports {policy_ports}"
    annotations = {d["metadata"]["name"]: d["spec"]["template"]["metadata"].get("annotations", {})
                   for d in k8s("Deployment")}
    annotated = [name for name, a in annotations.items() if any(k.startswith("prometheus.io/") for k in a)]
    assert not annotated, f"scrape through the PodMonitor only, not annotations: {annotated}"


def test_grafana_is_provisioned_with_the_dashboard_and_prometheus():
    services = compose()["services"]
    (grafana,) = [s for s in services.values() if s["image"].startswith("grafana/grafana:")]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    prov = mounts["/etc/grafana/provisioning"]
    assert (DEPLOY / prov).resolve() == DEPLOY / "grafana" / "provisioning"
    (dashboard_at,) = [dst for dst, src in mounts.items() if src.endswith(".json")]
    assert (DEPLOY / mounts[dashboard_at]).resolve() == DEPLOY / "grafana" / "entropylong.json"
    assert (DEPLOY / "grafana" / "entropylong.json").is_file()
    providers = [p for f in (DEPLOY / prov / "dashboards").glob("*.y*ml") for p in load_yaml(f)[0]["providers"]]
    assert any(p["type"] == "file" and PurePosixPath(dashboard_at).is_relative_to(p["options"]["path"])
               for p in providers), f"no dashboard provider loads {dashboard_at}"
    sources = [s for f in (DEPLOY / prov / "datasources").glob("*.y*ml") for s in load_yaml(f)[0]["datasources"]]
    assert sources and all(s["type"] == "prometheus" for s in sources)
    (default,) = [s for s in sources if s.get("isDefault")]
    host = re.match(r"https?://([^:/]+):(\d+)", default["url"])
    assert host and services[host[1]]["image"].startswith("prom/prometheus:") and host[2] == "9090", default


# ---------------------------------------------------------------------------------------------
# exposure and secrets


def test_compose_publishes_host_ports_on_loopback_only():
    published = 0
    for name, svc in compose()["services"].items():
        for port in svc.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"compose {name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:") and str(port).count(":") == 2, f"compose {name}: {port}"
    assert published >= 2


def test_secrets_come_only_from_a_secret():
    cfg = base_config()
    assert cfg.kafka.sasl_password is None and cfg.milvus.token is None, "a secret in deploy/config.toml"
    for name, svc in compose()["services"].items():
        for key, value in compose_env(svc).items():
            if key in SECRET_ENV:
                assert re.fullmatch(r"\$\{\w+(:?[-?][^}]*)?\}", value), f"compose {name}: {key} set literally"
    for cm in k8s("ConfigMap"):
        assert not SECRET_ENV & set(cm.get("data", {})), f"ConfigMap {cm['metadata']['name']} holds a secret"
    for doc in k8s_docs():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for c in containers(doc):
            where = f"{doc['metadata']['name']}/{c['name']}"
            names = [e["name"] for e in c.get("env", [])]
            assert len(names) == len(set(names)), f"{where}: a variable set twice {names}"
            for entry in c.get("env", []):
                if entry["name"] in SECRET_ENV:
                    assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], (
                        f"{where}: {entry['name']} not from a Secret")
                    ref = entry["valueFrom"]["secretKeyRef"]
                    assert ref["key"] in k8s_named("Secret", ref["name"]).get("stringData", {}), ref
            if k8s_argv(c)[:2] == ["elong", "worker"]:
                assert SECRET_ENV <= set(names), f"{where}: takes no secrets from the Secret"
            k8s_config(c)  # every ELONG_ variable is a valid configuration key
    for secret in k8s("Secret"):  # the placeholder carries no secret
        data = secret.get("stringData", {}) | secret.get("data", {})
        for key, value in data.items():
            if "password" in key or "token" in key:
                assert not value, f"Secret {secret['metadata']['name']}: {key} has a value in the repository"
    for auth in k8s("TriggerAuthentication"):
        assert not auth["spec"].get("env"), auth["metadata"]["name"]
        for ref in auth["spec"].get("secretTargetRef", []):
            assert ref["key"] in k8s_named("Secret", ref["name"]).get("stringData", {}), ref


# ---------------------------------------------------------------------------------------------
# topics before workers


def assert_topics_code(where: str, argv: list[str]) -> None:
    assert argv[:2] in (["python3", "-c"], ["python", "-c"]), f"{where}: {argv}"
    code = argv[2]
    assert TOPICS_CALL in code, f"{where}: {code}"
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert callable(getattr(module, alias.name)), f"{where}: {node.module}.{alias.name}"


def test_topics_are_created_before_the_workers_start():
    services = compose()["services"]
    topic_services = [n for n, s in services.items() if TOPICS_CALL in " ".join(compose_argv(s))]
    assert len(topic_services) == 1, topic_services
    init = services[topic_services[0]]
    assert_topics_code(f"compose {topic_services[0]}", compose_argv(init))
    assert init.get("restart", "no") == "no"
    assert any(v.split(":")[1] == CONFIG_MOUNT for v in init["volumes"])
    for stage in (s for s, _, _ in stage_groups(base_config())):
        name, svc = compose_worker(stage)
        deps = svc["depends_on"]
        assert deps[topic_services[0]]["condition"] == "service_completed_successfully", name
        for server in ("kafka", "milvus"):
            assert deps[server]["condition"] == "service_healthy", f"compose {name}: {server}"
            assert services[server].get("healthcheck"), server
    assert services["kafka"]["environment"].get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") == "false"
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft, one node
    (job,) = k8s("Job")
    (c,) = containers(job)
    assert_topics_code(f"Job {job['metadata']['name']}", k8s_argv(c))
    assert_config_mounted(job, c)
    k8s_config(c)
    for stage in (s for s, _, _ in stage_groups(base_config())):
        dep, _ = k8s_worker(stage)
        (init_c,) = pod_spec(dep)["initContainers"]
        assert_topics_code(f"{dep['metadata']['name']} init", k8s_argv(init_c))
        assert_config_mounted(dep, init_c)
