"""The workers of deploy/, one per registered stage, rendered from its registry entry and Workload:
deploy/k8s/workers.yaml whole, and the workers' block of deploy/compose.yaml. Rewritten by
`python -m entropylong_streamer.generated_files`; a stage added to the registry is deployed by both."""

from __future__ import annotations

from pathlib import Path

from . import registry
from .registry import StageSpec

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
WORKERS = DEPLOY / "k8s" / "workers.yaml"
COMPOSE = DEPLOY / "compose.yaml"
IMAGES = ("entropylong-streamer:0.1.0", "entropylong-streamer-gpu:0.1.0")
CONFIG = "/etc/elong/config.toml"
BEGIN = "  # BEGIN workers: one per stage, rendered from streamer/registry.py (entropylong_streamer.generated_files)"
END = "  # END workers"
SECRETS = (("ELONG_KAFKA__SASL_USERNAME", "kafka-sasl-username"),
           ("ELONG_KAFKA__SASL_PASSWORD", "kafka-sasl-password"), ("ELONG_MILVUS__TOKEN", "milvus-token"))
TOPICS_CALL = ("from entropylong_streamer.config import load_config; from entropylong_streamer.status import "
               f"ensure_pipeline_topics; ensure_pipeline_topics(load_config('{CONFIG}'))")
DSHM_WHY = "vLLM and torch share tensors between processes through /dev/shm"

HEADER = """\
# One Deployment per stage, each running `elong worker STAGE --config /etc/elong/config.toml`
# (the config from the elong-config ConfigMap, per-stage differences as ELONG_* variables), rendered
# from the stage registry (streamer/registry.py) by `python -m entropylong_streamer.generated_files`.
# The GPU stages run the GPU image on a GPU node (one nvidia.com/gpu each, the NVIDIA device plugin's
# toleration and the GPU operator's node label); the others are CPU.
# The scalable stages are scaled by KEDA on their consumer group's lag (autoscaling.yaml); the others
# run exactly one replica, Recreate (never two at once).
# Every worker serves Prometheus metrics on the container port `metrics` (scraped by the
# PodMonitor in monitoring.yaml). Secrets come from the elong-secrets Secret only.
"""


def environment(spec: StageSpec) -> dict[str, str]:
    """What differs from deploy/config.toml in its worker: the GPU's engine and device."""
    if not spec.workload.gpu:
        return {}
    if spec.runner == "trainer":
        return {"ELONG_TRAINER__DEVICE": "cuda"}
    return {"ELONG_MODEL__ENGINE": "vllm", "ELONG_MODEL__DEVICE": "cuda"}


def _secrets(indent: str) -> list[str]:
    return [line for env, key in SECRETS for line in (
        f"{indent}- name: {env}", f"{indent}  valueFrom:",
        f"{indent}    secretKeyRef: {{name: elong-secrets, key: {key}, optional: true}}")]


def deployment(spec: StageSpec) -> str:
    w, name = spec.workload, f"elong-{spec.name}"
    labels = ["app.kubernetes.io/name: " + name, "app.kubernetes.io/part-of: entropylong-streamer",
              "app.kubernetes.io/component: worker", f"entropylong.io/stage: {spec.name}"]
    out = [f"# {w.about}" if w.about else f"# The {spec.name} stage.", "apiVersion: apps/v1", "kind: Deployment",
           "metadata:", f"  name: {name}", "  namespace: elong", "  labels:", *(f"    {x}" for x in labels), "spec:"]
    if spec.scalable:
        out.append(f"  # replicas: set by the KEDA ScaledObject {name} (autoscaling.yaml)")
    else:
        out += ["  replicas: 1", "  strategy:", "    type: Recreate"]
    out += ["  revisionHistoryLimit: 3", "  selector:", "    matchLabels:", f"      app.kubernetes.io/name: {name}",
            "  template:", "    metadata:", "      labels:", *(f"        {x}" for x in labels), "    spec:",
            "      securityContext:", "        runAsNonRoot: true", "        runAsUser: 10001",
            "        runAsGroup: 10001", "        fsGroup: 10001", "        seccompProfile: {type: RuntimeDefault}",
            f"      terminationGracePeriodSeconds: {120 if w.gpu else 60}"]
    if w.gpu:
        out += ["      nodeSelector:", '        nvidia.com/gpu.present: "true"', "      tolerations:",
                "        - key: nvidia.com/gpu", "          operator: Exists", "          effect: NoSchedule"]
    out += ["      initContainers:",
            "        # Every topic with its partition count, before the worker subscribes (idempotent; the same",
            "        # call as the elong-topics Job): a broker that auto-creates topics would otherwise make them",
            "        # with its default partition count.",
            "        - name: topics", f"          image: {IMAGES[0]}",
            f'          command: ["python3", "-c", "{TOPICS_CALL}"]',
            "          envFrom:", "            - configMapRef: {name: elong-env}", "          env:",
            *_secrets("            "), "          volumeMounts:",
            "            - {name: config, mountPath: /etc/elong, readOnly: true}", "          resources:",
            "            requests: {cpu: 100m, memory: 256Mi}", "            limits: {memory: 512Mi}",
            "          securityContext:", "            allowPrivilegeEscalation: false",
            "            capabilities: {drop: [ALL]}",
            "      containers:", "        - name: worker", f"          image: {IMAGES[w.gpu]}",
            '          command: ["elong"]', f'          args: ["worker", "{spec.name}", "--config", "{CONFIG}"]',
            "          envFrom:", "            - configMapRef: {name: elong-env}", "          env:",
            *(f"            - {{name: {k}, value: {v}}}" for k, v in environment(spec).items()),
            *_secrets("            "),
            "          ports:", "            - {name: metrics, containerPort: 9400}", "          livenessProbe:",
            "            httpGet: {path: /metrics, port: metrics}", "            initialDelaySeconds: 30",
            "            periodSeconds: 30", "            timeoutSeconds: 10", "            failureThreshold: 3",
            "          resources:", f'            requests: {{cpu: "{w.cpu}", memory: {w.memory}}}',
            f"            limits: {{memory: {w.memory_limit}{', nvidia.com/gpu: 1' if w.gpu else ''}}}",
            "          securityContext:", "            allowPrivilegeEscalation: false",
            "            capabilities: {drop: [ALL]}", "          volumeMounts:",
            "            - {name: config, mountPath: /etc/elong, readOnly: true}",
            "            - {name: data, mountPath: /data}"]
    if w.shared:
        out += [f"            # {w.shared_why}, from the shared claim",
                f"            - {{name: shared, mountPath: /data/{w.shared}, subPath: {w.shared}"
                f"{', readOnly: true' if w.shared_readonly else ''}}}"]
    if w.gpu:
        out.append("            - {name: dshm, mountPath: /dev/shm}")
    out += ["      volumes:", "        - name: config", "          configMap:", "            name: elong-config",
            "            items: [{key: config.toml, path: config.toml}]"]
    readonly = ", readOnly: true" if w.shared_readonly else ""
    claim = f"          persistentVolumeClaim: {{claimName: elong-data{readonly}}}"
    if w.shared == "":  # the claim is its data folder
        out += [f"        # {w.shared_why}", "        - name: data", claim]
    else:
        out += ["        # the model cache only: per pod", "        - name: data",
                "          emptyDir: {sizeLimit: 20Gi}"]
        if w.shared:
            out += ["        - name: shared", claim]
    if w.gpu:
        out += [f"        # {DSHM_WHY}", "        - name: dshm", "          emptyDir: {medium: Memory, sizeLimit: 8Gi}"]
    return "\n".join(out) + "\n"


def render_workers() -> str:
    return HEADER + "---\n".join(deployment(s) for s in registry.STAGES)


def compose_service(spec: StageSpec) -> str:
    w = spec.workload
    out = [f"  # {w.about}" if w.about else f"  # The {spec.name} stage."]
    if not spec.scalable:
        out.append("  # Exactly one, never scaled (`docker compose up --scale` leaves it alone).")
    out += [f"  {spec.name}:", f"    <<: *{'gpu-worker' if w.gpu else 'worker'}",
            f'    command: ["worker", "{spec.name}", "--config", "{CONFIG}"]', "    environment:",
            "      ELONG_METRICS__HOST: 0.0.0.0", *(f"      {k}: {v}" for k, v in environment(spec).items()),
            "    volumes:", "      - *config-volume"]
    if w.shared is not None:
        out.append(f"      - elong-data:/data  # {w.shared_why}")
    return "\n".join(out) + "\n"


def render_compose() -> str:
    """deploy/compose.yaml with its workers' block rendered again."""
    text = COMPOSE.read_text()
    start, end = text.index(BEGIN), text.index(END)
    block = "\n".join(compose_service(s) for s in registry.STAGES)
    return text[: start + len(BEGIN)] + "\n" + block + text[end:]
