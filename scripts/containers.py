"""Checks the container files without a Docker engine (run by scripts/containers.sh).

Each check prints `containers: ok NAME` or `containers: FAIL NAME: why`; the last line is
`containers: N passed, N failed`, and the exit status is 1 when any failed.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import yaml

import harness
from harness import Failure, Service, free_port

# The checks below are asserts: under python -O (PYTHONOPTIMIZE) they would vanish, and with
# them every check, so the script refuses to run so.
if not __debug__:
    raise SystemExit(f"{__file__}: its checks are asserts; run it without -O or PYTHONOPTIMIZE")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HADOLINT = os.path.join(os.path.dirname(sys.executable), "hadolint")


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


DOCKERFILE = read("Dockerfile")
COMPOSE = yaml.safe_load(read("docker-compose.yml"))
KUBERNETES = [doc for doc in yaml.safe_load_all(read("deploy/kubernetes.yaml")) if doc]
# The configuration module, all its files: each section documents its own variables.
CONFIG_RS = "\n".join(
    read(os.path.join("src/config", name))
    for name in sorted(os.listdir(os.path.join(ROOT, "src/config")))
    if name.endswith(".rs")
)


def instructions():
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            yield keyword.upper(), rest.strip()


def stages():
    """Each stage's instructions, in order."""
    found = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def dockerfile_env():
    env = {}
    for keyword, rest in stages()[-1]:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def kubernetes(kind):
    return next(doc for doc in KUBERNETES if doc.get("kind") == kind)


def k8s_container():
    return kubernetes("Deployment")["spec"]["template"]["spec"]["containers"][0]


def k8s_env():
    """The container's variables that have a value in the file; those from a Secret or a
    ConfigMap (valueFrom), such as REDIS_URL, have none here and are left out."""
    return {e["name"]: str(e["value"]) for e in k8s_container().get("env", []) if "value" in e}


def k8s_env_names():
    """Every variable the container sets, valueFrom ones included."""
    return [e["name"] for e in k8s_container().get("env", [])]


def compose_env():
    env = COMPOSE["services"]["events-service"].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


def build_command():
    commands = re.findall(r"cargo build[^\\&;\n]*", DOCKERFILE)
    assert len(commands) == 1, f"the Dockerfile has {len(commands)} cargo build commands, not 1"
    return commands[0].strip()


BINARY = None  # set by the first check: the binary the Dockerfile's command builds


# --- the checks ------------------------------------------------------------------------------


def the_dockerfile_builds_the_binary_the_scripts_run():
    global BINARY
    command = build_command()
    ours = " ".join(harness.service.BUILD)
    assert command == ours, f"the Dockerfile runs `{command}`, the harness (scripts/harness/) `{ours}`"
    for script in ("scripts/run.sh", "scripts/faults.sh"):
        assert "harness_build" in read(script).split(), f"{script} does not build with the harness"
    binary = re.search(r"--bin (\S+)", command).group(1)
    copied = f"target/release/{binary}"
    assert re.search(rf"\bcp {re.escape(copied)} ", DOCKERFILE), f"the image does not take {copied}"
    # The harness runs the command, or takes EVENTS_SERVICE_BINARY (CI: built once by it).
    built = str(harness.build())
    # Real paths: CI's target/ is a link into the per-user cache (.ci/run).
    assert os.path.realpath(built) == os.path.realpath(os.path.join(ROOT, copied)), \
        f"{built} is not {copied}, the image's binary"
    BINARY = built
    how = "prebuilt by it" if os.environ.get(harness.service.PREBUILT) else "run"
    return f"`{command}` (the harness's, so scripts/run.sh's and scripts/faults.sh's; {how}), then {copied}"


def the_builder_copies_every_file_the_build_reads():
    copied = set()
    for keyword, rest in stages()[0]:
        if keyword == "COPY" and not rest.startswith("--from"):
            copied.update(os.path.normpath(source) for source in rest.split()[:-1])
    needed = {"Cargo.toml", "Cargo.lock", "src"}
    # Files compiled into the binary: include_str!, include_bytes! and include! in src/.
    for directory, _, files in os.walk(os.path.join(ROOT, "src")):
        for name in files:
            if name.endswith(".rs"):
                source = read(os.path.join(directory, name))
                for included in re.findall(r'include(?:_str|_bytes)?!\(\s*"([^"]+)"', source):
                    path = os.path.relpath(os.path.join(directory, included), ROOT)
                    needed.add(path.split(os.sep)[0])
    missing = sorted(n for n in needed if not any(n == c or n.startswith(c + "/") for c in copied))
    assert not missing, f"the builder stage does not COPY {missing}, which the build reads"
    return f"COPY {' '.join(sorted(copied))}"


def the_builder_has_this_rustc_and_both_stages_this_debian():
    bases = [rest.split()[0] for keyword, rest in instructions() if keyword == "FROM"]
    assert len(bases) == 2, f"two stages, not {bases}"
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=True)
    version = rustc.stdout.split()[1]
    assert bases[0].startswith(f"rust:{version}-"), f"builder {bases[0]}, but rustc here is {version}"
    codename = re.search(r"^VERSION_CODENAME=(\w+)", read("/etc/os-release"), re.M).group(1)
    for base in bases:
        assert base.endswith(f"-{codename}") or base.endswith(f":{codename}-slim"), (
            f"{base} is not Debian {codename}, the release this machine (and the checks) run on"
        )
    return f"{bases[0]} (rustc {version}), {bases[1]}"


def dpkg_packages():
    """Installed packages: name to (essential, dependency names that are installed)."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package}\t${Essential}\t${Pre-Depends}, ${Depends}\n"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    names = {row[0] for row in rows}
    packages = {}
    for name, essential, depends in rows:
        deps = []
        for alternatives in filter(None, (d.strip() for d in depends.split(","))):
            options = [re.split(r"[ :(]", a.strip())[0] for a in alternatives.split("|")]
            deps += [option for option in options if option in names][:1]
        packages[name] = (essential == "yes", deps)
    return packages


def closure(packages, roots):
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in packages and name not in seen:
            seen.add(name)
            todo.extend(packages[name][1])
    return seen


def owner(library):
    """The Debian package that holds `library` (a path from ldd)."""
    real = os.path.realpath(library)
    candidates = {library, real}
    for path in list(candidates):
        for a, b in (("/usr/lib/", "/lib/"), ("/lib/", "/usr/lib/")):
            if path.startswith(a):
                candidates.add(b + path[len(a):])
    for path in candidates:
        found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if found.returncode == 0:
            return found.stdout.split(":")[0]
    raise AssertionError(f"no Debian package holds {library}")


def the_runtime_image_has_every_library_the_binary_links():
    runtime = stages()[-1]
    installed = []
    for keyword, rest in runtime:
        match = re.search(r"apt-get install ((?:-\S+ )*)([^&]+)", rest) if keyword == "RUN" else None
        if match:
            installed += match.group(2).split()
    packages = dpkg_packages()
    # debian:*-slim: the essential packages, apt, and what they need.
    base = closure(packages, [n for n, (essential, _) in packages.items() if essential] + ["apt"])
    available = base | closure(packages, installed)
    ldd = subprocess.run(["ldd", BINARY], capture_output=True, text=True, check=True).stdout
    libraries = re.findall(r"=> (/\S+)", ldd)
    missing = {lib: owner(lib) for lib in libraries if owner(lib) not in available}
    assert not missing, f"the runtime stage lacks {missing} (add the package to its apt-get install)"
    assert "curl" in available, "the HEALTHCHECK needs curl"
    return f"{len(libraries)} libraries; installed beyond the base: {' '.join(installed)}"


def hadolint_passes():
    result = subprocess.run(
        [HADOLINT, "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return subprocess.run([HADOLINT, "--version"], capture_output=True, text=True).stdout.strip()


def documented_variables():
    """The variables src/config/ documents: a doc comment that starts with `NAME`."""
    return set(re.findall(r"^\s*/// `([A-Z][A-Z0-9_]*)\*?`", CONFIG_RS, re.M))


def every_variable_set_is_one_the_service_reads():
    documented = documented_variables()
    assert {"KAFKA_BROKERS", "PORT", "SHUTDOWN_TIMEOUT_MS"} <= documented, "src/config/ is unreadable"
    passthrough = [name for name in documented if name.endswith("_")]  # RDKAFKA_ and friends
    for where, env in (
        ("Dockerfile", dockerfile_env()),
        ("docker-compose.yml", compose_env()),
        ("deploy/kubernetes.yaml", k8s_env_names()),
    ):
        unknown = [
            name for name in env
            if name not in documented and not any(name.startswith(p) for p in passthrough)
        ]
        assert not unknown, f"{where} sets {unknown}, which src/config/ does not document"
    return f"{len(documented)} documented variables"


def the_files_agree_on_ports_brokers_and_the_user():
    port = dockerfile_env()["PORT"]
    expose = [rest for keyword, rest in stages()[-1] if keyword == "EXPOSE"]
    assert expose == [port], f"EXPOSE {expose} but PORT={port}"
    service = COMPOSE["services"]["events-service"]
    kafka = COMPOSE["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.1\.\d+", kafka["image"]), kafka["image"]
    assert service["build"] == ".", "the service is built from the Dockerfile"
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert "healthcheck" in kafka, "Kafka has a health check"
    assert [str(p) for p in service["ports"]] == [f"{port}:{port}"], service["ports"]
    advertised = {
        address.split("://", 1)[1]
        for address in str(kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]).split(",")
    }
    brokers = compose_env()["KAFKA_BROKERS"]
    assert set(brokers.split(",")) <= advertised, f"{brokers} is not among {advertised}"

    deployment, k8s_service = kubernetes("Deployment"), kubernetes("Service")
    assert deployment["spec"]["replicas"] == 2
    container = k8s_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": int(k8s_env().get("PORT", port))} and str(ports["http"]) == port, ports
    assert k8s_service["spec"]["ports"][0]["targetPort"] in ports
    assert k8s_service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert "KAFKA_BROKERS" in k8s_env()
    user = next(rest for keyword, rest in stages()[-1] if keyword == "USER").split(":")[0]
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] and str(pod["runAsUser"]) == user, (pod, user)
    return f"port {port}, brokers {brokers}, user {user}"


def property_name(variable):
    """The broker property the apache/kafka image makes of KAFKA_<NAME> (its `render-properties`):
    `___` is a dash, `__` an underscore, `_` a dot."""
    name = variable.removeprefix("KAFKA_").lower()
    return name.replace("___", "-").replace("__", "\0").replace("_", ".").replace("\0", "_")


def the_compose_broker_settings_make_a_kraft_node():
    env = {name: str(value) for name, value in COMPOSE["services"]["kafka"]["environment"].items()}
    cluster_id = env.pop("CLUSTER_ID", None)
    assert cluster_id, "the apache/kafka image needs CLUSTER_ID in KRaft mode"
    with tempfile.TemporaryDirectory() as work:
        env["KAFKA_LOG_DIRS"] = os.path.join(work, "data")
        properties = os.path.join(work, "server.properties")
        with open(properties, "w") as f:
            f.writelines(f"{property_name(name)}={value}\n" for name, value in env.items())
        # The storage tool parses and validates the whole broker configuration, as the image's
        # start does, without starting a broker.
        result = subprocess.run(
            [os.path.join(ROOT, "kafka/tool.sh"), "kafka.tools.StorageTool", "format",
             "-t", cluster_id, "-c", properties],
            capture_output=True, text=True,
        )
        why = [line for line in result.stderr.splitlines() if "Exception" in line][:1]
        assert result.returncode == 0, f"Kafka refuses the settings: {why or result.stderr}"
    return f"{len(env)} settings; {result.stdout.strip()}"


def seconds(duration):
    """Compose's 25s, 1m30s."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)(ms|h|m|s)", str(duration)))


def shutdown_has_time_to_finish():
    default = int(re.search(r'"SHUTDOWN_TIMEOUT_MS", ([\d_]+)', CONFIG_RS).group(1).replace("_", ""))
    compose = float(compose_env().get("SHUTDOWN_TIMEOUT_MS", default)) / 1000
    grace = seconds(COMPOSE["services"]["events-service"]["stop_grace_period"])
    assert grace > compose + 1, f"compose stops after {grace} s, the shutdown may take {compose} s"
    k8s = float(k8s_env().get("SHUTDOWN_TIMEOUT_MS", default)) / 1000
    pod = kubernetes("Deployment")["spec"]["template"]["spec"]
    hook = k8s_container().get("lifecycle", {}).get("preStop", {}).get("exec", {})
    pre_stop = hook.get("command", [])
    pre_stop = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    total = pod["terminationGracePeriodSeconds"]
    assert total > pre_stop + k8s + 1, f"{total} s for a {pre_stop} s preStop and a {k8s} s shutdown"
    return f"compose {grace:g} s > {compose:g} s; Kubernetes {total} s > {pre_stop:g} + {k8s:g} s"


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def probe_paths():
    """The routes the Dockerfile's HEALTHCHECK and the Kubernetes probes ask."""
    healthcheck = next(rest for keyword, rest in stages()[-1] if keyword == "HEALTHCHECK")
    docker = re.search(r"http://[^/\s]+(/[^\s\"]*)", healthcheck).group(1)
    probes = k8s_container()
    liveness = probes["livenessProbe"]["httpGet"]["path"]
    readiness = probes["readinessProbe"]["httpGet"]["path"]
    return docker, liveness, readiness


def start_as_the_image_would(where, env):
    """The binary with the Dockerfile's ENV and then `env`, as the image's user (when this runs
    as root), on a port of its own on loopback, with Kafka where nothing listens and nothing of
    this environment. Returns the service and the user once it serves HTTP (liveness)."""
    variables = {**dockerfile_env(), **env}
    variables.update(HOST="127.0.0.1", KAFKA_BROKERS=f"127.0.0.1:{free_port()}", PATH="/usr/bin:/bin")
    uid, _, gid = next(rest for keyword, rest in stages()[-1] if keyword == "USER").partition(":")
    command = [BINARY]
    if os.getuid() == 0:
        command = ["setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups", BINARY]
    service = Service(variables, command=command, inherit=False, cwd="/", health="live")
    try:
        return service.start(15), uid
    except Failure as failure:
        raise AssertionError(f"with {where}'s variables it did not serve: {failure}") from None


def the_probes_hit_the_right_routes_of_the_real_binary():
    docker, liveness, readiness = probe_paths()
    files = (("docker-compose.yml", compose_env()), ("deploy/kubernetes.yaml", k8s_env()))
    for where, env in files:
        service, uid = start_as_the_image_would(where, env)
        with service:
            for name, path in (("HEALTHCHECK", docker), ("livenessProbe", liveness)):
                status, body = get(service.port, path)
                assert status == 200 and body.get("status") is True, (
                    f"{name} {path} without Kafka: {status} {body}"
                )
            # Readiness is Kafka's: 503 without a broker, while liveness is 200.
            status, body = get(service.port, readiness)
            assert status == 503 and body.get("status") is False and "kafka" in body, (
                f"readinessProbe {readiness} without Kafka: {status} {body}"
            )
            documented = set(get(service.port, "/api/events/openapi.json")[1]["paths"])
            for path in (docker, liveness, readiness):
                assert path in documented, f"{path} is not in the OpenAPI document"
            code, _ = service.stop(25)
            assert code == 0, f"with {where}'s variables, SIGTERM: exit status {code}"
    return (
        f"{docker} and {liveness} 200 without Kafka, {readiness} 503; as uid {uid} with each"
        " file's variables; exit 0 on SIGTERM"
    )


CHECKS = [
    the_dockerfile_builds_the_binary_the_scripts_run,
    the_builder_copies_every_file_the_build_reads,
    the_builder_has_this_rustc_and_both_stages_this_debian,
    the_runtime_image_has_every_library_the_binary_links,
    hadolint_passes,
    every_variable_set_is_one_the_service_reads,
    the_files_agree_on_ports_brokers_and_the_user,
    the_compose_broker_settings_make_a_kraft_node,
    shutdown_has_time_to_finish,
    the_probes_hit_the_right_routes_of_the_real_binary,
]

if __name__ == "__main__":
    passed = failed = 0
    for check in CHECKS:
        name = check.__name__.replace("_", " ")
        try:
            detail = check()
            passed += 1
            print(f"containers: ok   {name}: {detail}", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, then counted
            failed += 1
            print(f"containers: FAIL {name}: {type(error).__name__}: {error}", flush=True)
            if BINARY is None and check is CHECKS[0]:
                break  # without the binary, the rest cannot run
    print(f"containers: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
