#!/usr/bin/env python3
"""Checks deploy/: every YAML parses, and the manifests, the systemd unit and the Dockerfile
agree on binaries, paths, ports and the daemon's flags and defaults.

    python3 deploy/check-manifests.py [REPOSITORY]      # exit 0: consistent; 1: problems; 77: no PyYAML

Run by Tests/CNITests/DeployManifestTests.swift.
"""
import json
import os
import re
import shlex
import sys

try:
    import yaml
except ImportError:
    print("PyYAML is not installed (pip install pyyaml / apt-get install python3-yaml)")
    sys.exit(77)

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
DEPLOY = os.path.join(ROOT, "deploy")
problems = []


def problem(text):
    problems.append(text)


def read(relative):
    with open(os.path.join(ROOT, relative), encoding="utf-8") as handle:
        return handle.read()


# --- the daemon's flags and defaults, from its source ---------------------------------------
daemon_source = read("Sources/vhost-switchd/VhostSwitchDaemon.swift")
flag_sources = "".join(read(os.path.join("Sources/vhost-switchd", name))
                       for name in sorted(os.listdir(os.path.join(ROOT, "Sources/vhost-switchd"))) if name.endswith(".swift"))
flags = set()
for match in re.finditer(r"@(?:Option|Flag)\(name: \.long.*\n\s*var (\w+)", flag_sources):
    flags.add("--" + re.sub(r"([A-Z])", lambda m: "-" + m.group(1).lower(), match.group(1)))
defaults = {
    "run-dir": re.search(r'var runDir = "([^"]+)"', daemon_source).group(1),
    "state-dir": re.search(r'var stateDir = "([^"]+)"', daemon_source).group(1),
}
defaults["socket-dir"] = defaults["run-dir"] + "/sockets"
defaults["api-socket"] = defaults["run-dir"] + "/api.sock"
# The plugin's default mode (Sources/vhost-switch-cni/Configuration.swift: defaultMode).
CNI_DEFAULT_MODE = re.search(r"static let defaultMode = Mode\.(\w+)", read("Sources/vhost-switch-cni/Configuration.swift")).group(1)
products = set(re.findall(r'\.executable\(name: "([^"]+)"', read("Package.swift")))


def parse_flags(arguments, where):
    """--name=value / --name value pairs; unknown flags are problems."""
    result = {}
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        if argument.startswith("--"):
            name, _, value = argument.partition("=")
            if not value and index + 1 < len(arguments) and not arguments[index + 1].startswith("--"):
                index += 1
                value = arguments[index]
            if name not in flags:
                problem(f"{where}: {name} is not a vhost-switchd flag (known: {sorted(flags)})")
            result[name[2:]] = value
        index += 1
    return result


def check_daemon_flags(values, where):
    for key in ("run-dir", "state-dir"):
        if values.get(key, defaults[key]) != defaults[key]:
            problem(f"{where}: --{key} {values[key]} differs from the daemon's default {defaults[key]}")
    if values.get("socket-dir", defaults["socket-dir"]) != defaults["socket-dir"]:
        problem(f"{where}: --socket-dir {values['socket-dir']} differs from <run-dir>/sockets")
    listen = values.get("listen")
    loopback = listen and (listen.startswith("127.") or listen.startswith("[::1]"))
    if listen and "api-token-file" not in values and not (loopback and "insecure-tcp" in values):
        problem(f"{where}: --listen {listen} has no --api-token-file (the daemon refuses to start; --insecure-tcp is for loopback only)")


# --- Dockerfile: the image layout ------------------------------------------------------------
dockerfile = read("deploy/Dockerfile")
stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
if len(stages) < 2:
    problem("Dockerfile: expected a multi-stage build (a Swift build stage and a runtime stage)")
build_stage, runtime_stage = stages[0], stages[-1]
if not build_stage.startswith("swift:"):
    problem("Dockerfile: the build stage should start FROM swift:<version>")
if not runtime_stage.startswith("debian:bookworm-slim"):
    problem("Dockerfile: the runtime stage should be debian:bookworm-slim")
for package in ("libmicrohttpd12", "libjansson4"):
    if package not in runtime_stage:
        problem(f"Dockerfile: the runtime image does not install {package}")
image_files = {"/bin/sh", "/bin/cp", "/bin/mv", "/bin/mkdir", "/bin/chmod", "/bin/echo"}
for match in re.finditer(r"install -D -m 0755 \"\$\(swift build[^)]*\)/([\w-]+)\" /out(/\S+)", build_stage):
    binary, destination = match.groups()
    if binary not in products:
        problem(f"Dockerfile: {binary} is not a product in Package.swift ({sorted(products)})")
    if f"--product {binary}" not in build_stage:
        problem(f"Dockerfile: {binary} is installed but never built with --product {binary}")
    image_files.add(destination)
if "COPY --from=build /out/ /" not in runtime_stage:
    problem("Dockerfile: the runtime stage does not copy /out/ from the build stage")
for match in re.finditer(r"RUN mkdir -p ([^\n]+)", runtime_stage):
    image_files.update(match.group(1).split())
# Scripts copied from the repository: executable in the image and in the repository.
for match in re.finditer(r"^COPY --chmod=0755 (deploy/\S+) (/\S+)$", runtime_stage, re.M):
    source, destination = match.groups()
    if not os.access(os.path.join(ROOT, source), os.X_OK):
        problem(f"Dockerfile: {source} is missing or not executable")
    image_files.add(destination)
for binary in ("vhost-switchd", "vhost-switch-cni"):
    if "/usr/local/bin/" + binary not in image_files:
        problem(f"Dockerfile: /usr/local/bin/{binary} is not in the image")
entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", runtime_stage, re.M).group(1))
cmd = json.loads(re.search(r"^CMD (.+)$", runtime_stage, re.M).group(1))
if entrypoint[0] not in image_files:
    problem(f"Dockerfile: ENTRYPOINT {entrypoint[0]} is not in the image")
check_daemon_flags(parse_flags(cmd, "Dockerfile CMD"), "Dockerfile CMD")

# --- every YAML parses ---------------------------------------------------------------------
documents = []
for directory, _, names in os.walk(DEPLOY):
    for name in sorted(names):
        if name.endswith((".yaml", ".yml")):
            path = os.path.join(directory, name)
            try:
                with open(path, encoding="utf-8") as handle:
                    for document in yaml.safe_load_all(handle):
                        if document is None:
                            continue
                        if not isinstance(document, dict) or "apiVersion" not in document or "kind" not in document:
                            problem(f"{path}: a document without apiVersion and kind")
                            continue
                        documents.append((os.path.relpath(path, ROOT), document))
            except yaml.YAMLError as error:
                problem(f"{path}: does not parse: {error}")


def find(kind, name=None):
    return [(where, d) for where, d in documents if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def json_object(text, where, what):
    """The JSON object in `text`, or {} and a problem."""
    try:
        value = json.loads(text)
    except ValueError as error:
        problem(f"{where}: {what} is not JSON: {error}")
        return {}
    if not isinstance(value, dict):
        problem(f"{where}: {what} is not a JSON object")
        return {}
    return value


def cni_config(text, where):
    config = json_object(text, where, "the CNI configuration")
    if not config:
        return {}
    if config.get("type") != "vhost-switch-cni" or "vhost-switch-cni" not in products:
        problem(f"{where}: CNI type {config.get('type')} is not the vhost-switch-cni binary")
    if config.get("cniVersion") not in ("0.4.0", "1.0.0", "1.1.0"):
        problem(f"{where}: cniVersion {config.get('cniVersion')}")
    api = config.get("api", "unix://" + defaults["api-socket"])
    if api != "unix://" + defaults["api-socket"]:
        problem(f"{where}: api {api} is not the daemon's API socket unix://{defaults['api-socket']}")
    if config.get("mode", CNI_DEFAULT_MODE) not in ("server", "client"):
        problem(f"{where}: mode {config.get('mode')}")
    if config.get("socketDir", "pods").startswith("/") or ".." in config.get("socketDir", ""):
        problem(f"{where}: socketDir must be relative to the daemon's socket directory")
    return config


# The plugin's install settings (Sources/vhost-switch-cni/InstallSettings.swift): its
# defaults, replaced by the keys of vhost-switch-cni.json when the DaemonSet installs one.
SETTINGS_FILE = "/etc/cni/net.d/vhost-switch.d/vhost-switch-cni.json"
install_settings = {"allowedDirectories": ["/run/vhost-switch"], "socketDirectory": "/run/vhost-switch/sockets"}


def plugin_settings(text, where):
    settings = json_object(text, where, "the plugin settings")
    known = {"allowedDirectories", "socketDirectory", "deviceInfoDirectory", "dataDirectory"}
    for key in set(settings) - known:
        problem(f"{where}: unknown plugin setting {key} (known: {sorted(known)})")
    if settings.get("socketDirectory", defaults["socket-dir"]) != defaults["socket-dir"]:
        problem(f"{where}: socketDirectory {settings['socketDirectory']} is not the daemon's --socket-dir {defaults['socket-dir']}")
    return settings


# --- the DaemonSet -------------------------------------------------------------------------
POD_SCRIPT = "/usr/local/bin/vhost-switchd-pod"


def check_rollout_handover(where, daemonset, daemon, command):
    """A rollout hands the switch over from the old pod's daemon to the new pod's
    (deploy/kubernetes/vhost-switchd-pod): both run at once on a node, and the old one waits."""
    strategy = daemonset["spec"].get("updateStrategy", {})
    rolling = strategy.get("rollingUpdate", {})
    if strategy.get("type") != "RollingUpdate" or rolling.get("maxSurge") != 1 or rolling.get("maxUnavailable") != 0:
        problem(f"{where}: updateStrategy must be RollingUpdate with maxSurge 1 and maxUnavailable 0 (the new pod takes over from the running one), found {strategy}")
    spec = daemonset["spec"]["template"]["spec"]
    if spec.get("hostNetwork") and daemon.get("ports"):
        problem(f"{where}: with hostNetwork a container port is a host port, which keeps the surge pod off the node; declare none")
    if command[:2] != [POD_SCRIPT, "start"]:
        problem(f"{where}: the daemon must start through {POD_SCRIPT} start (it decides on --takeover), found {command}")
    pre_stop = daemon.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if pre_stop != [POD_SCRIPT, "pre-stop"]:
        problem(f"{where}: preStop must be {POD_SCRIPT} pre-stop (it waits for the hand-over), found {pre_stop}")
    env = {e["name"]: e for e in daemon.get("env", [])}
    if env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problem(f"{where}: the daemon container needs POD_NAME from metadata.name (the successor's name)")
    wait = int(env.get("VHOST_SWITCHD_HANDOVER_WAIT", {}).get("value", "60"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace < wait + 30:
        problem(f"{where}: terminationGracePeriodSeconds {grace} leaves under 30 s for a clean stop after the {wait} s hand-over wait")


daemonsets = find("DaemonSet")
if len(daemonsets) != 1:
    problem(f"expected one DaemonSet, found {len(daemonsets)}")
installed_cni_files = set()
cni_bin_host_path = None
for where, daemonset in daemonsets:
    spec = daemonset["spec"]["template"]["spec"]
    if not spec.get("hostNetwork"):
        problem(f"{where}: the DaemonSet must use hostNetwork (AF_PACKET ports, loopback probes)")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    host_paths = {name: v["hostPath"]["path"] for name, v in volumes.items() if "hostPath" in v}
    images = {c["image"] for c in spec.get("containers", []) + spec.get("initContainers", [])}
    if len(images) != 1:
        problem(f"{where}: the init container and the daemon should run the same image, found {images}")
    for container in spec.get("containers", []) + spec.get("initContainers", []):
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problem(f"{where}: {container['name']} mounts undefined volume {mount['name']}")
        security = container.get("securityContext", {})
        if security.get("privileged"):
            problem(f"{where}: {container['name']} is privileged; use capabilities")
        for volume in volumes.values():
            if "configMap" in volume and not find("ConfigMap", volume["configMap"]["name"]):
                problem(f"{where}: ConfigMap {volume['configMap']['name']} is not defined in deploy/")

    daemon = next((c for c in spec["containers"] if c["name"] == "vhost-switchd"), None)
    if daemon is None:
        problem(f"{where}: no vhost-switchd container")
        continue
    command = daemon.get("command", entrypoint)
    if command[0] not in image_files:
        problem(f"{where}: {command[0]} is not in the image")
    check_rollout_handover(where, daemonset, daemon, command)
    values = parse_flags(command[1:] + daemon.get("args", []), where)
    check_daemon_flags(values, where)
    mounts = {m["mountPath"]: host_paths.get(m["name"]) for m in daemon.get("volumeMounts", [])}
    for key in ("run-dir", "state-dir"):
        path = values.get(key, defaults[key])
        if mounts.get(path) != path:
            problem(f"{where}: {path} (--{key}) must be the host path {path} mounted at the same place, found {mounts.get(path)}")
    capabilities = set(daemon.get("securityContext", {}).get("capabilities", {}).get("add", []))
    for capability in ("NET_RAW", "NET_ADMIN", "IPC_LOCK", "SYS_NICE"):
        if capability not in capabilities:
            problem(f"{where}: the daemon lacks capability {capability}")
    resources = daemon.get("resources", {})
    if "hugepages-2Mi" not in resources.get("requests", {}) or resources["requests"].get("hugepages-2Mi") != resources.get("limits", {}).get("hugepages-2Mi"):
        problem(f"{where}: hugepages-2Mi must be requested with limits equal to requests")
    # Probes go to the read-only listener (no token; the write-capable one needs one).
    metrics = values.get("metrics-listen", "")
    metrics_host, _, metrics_port = metrics.rpartition(":")
    metrics_host = metrics_host.strip("[]")
    for probe_name, path in (("livenessProbe", "/v1/health"), ("readinessProbe", "/v1/ready")):
        probe = daemon.get(probe_name, {})
        http = probe.get("httpGet")
        if http:
            if http.get("path") != path:
                problem(f"{where}: {probe_name} must probe {path}")
            if not metrics or http.get("port") != int(metrics_port):
                problem(f"{where}: {probe_name} port {http.get('port')} is not the --metrics-listen port ({metrics or 'none'})")
            wildcard = metrics_host in ("0.0.0.0", "::")
            if metrics and not wildcard and http.get("host", "") != metrics_host:
                problem(f"{where}: {probe_name} host {http.get('host')} is not the --metrics-listen address {metrics}")
            if metrics and wildcard and http.get("host") not in (None, "127.0.0.1", "::1"):
                problem(f"{where}: {probe_name} host {http.get('host')} is not an address of --metrics-listen {metrics}")
        elif "exec" in probe:
            if not any(defaults["api-socket"] in part for part in probe["exec"]["command"]):
                problem(f"{where}: {probe_name} exec probe does not use {defaults['api-socket']}")
        else:
            problem(f"{where}: no {probe_name}")

    # Scraping: the pod annotations and the ServiceMonitor's Service name the read-only port.
    annotations = daemonset["spec"]["template"].get("metadata", {}).get("annotations", {})
    if metrics and annotations.get("prometheus.io/port") != metrics_port:
        problem(f"{where}: prometheus.io/port {annotations.get('prometheus.io/port')} is not the --metrics-listen port {metrics_port}")
    if annotations.get("prometheus.io/path", "/metrics") != "/metrics":
        problem(f"{where}: prometheus.io/path must be /metrics")
    for _, service in find("Service", "vhost-switchd-metrics"):
        ports = service.get("spec", {}).get("ports", [])
        if not any(str(p.get("port")) == metrics_port for p in ports):
            problem(f"deploy/kubernetes/servicemonitor.yaml: the metrics Service does not expose {metrics_port}")
        if service.get("spec", {}).get("selector") != daemonset["spec"]["selector"].get("matchLabels"):
            problem("deploy/kubernetes/servicemonitor.yaml: the metrics Service does not select the DaemonSet's pods")
    if not find("ServiceMonitor", "vhost-switchd"):
        problem("deploy/kubernetes/servicemonitor.yaml: no ServiceMonitor vhost-switchd")

    # The init container installs the plugin and its configuration onto host paths.
    for init in spec.get("initContainers", []):
        script = " ".join(init.get("command", []) + init.get("args", []))
        init_mounts = {m["mountPath"]: m["name"] for m in init.get("volumeMounts", [])}
        for source in re.findall(r"cp (\S+) ", script):
            if not (source in image_files or any(source.startswith(p + "/") for p in init_mounts)):
                problem(f"{where}: init container copies {source}, which is neither in the image nor mounted")
        for destination in re.findall(r"mv -f \S+ (\S+)", script):
            mount = next((p for p in init_mounts if destination.startswith(p + "/")), None)
            if mount is None or init_mounts[mount] not in host_paths:
                problem(f"{where}: init container installs {destination} outside a hostPath mount")
                continue
            host_file = host_paths[init_mounts[mount]] + destination[len(mount):]
            installed_cni_files.add(host_file)
            if destination.endswith("/vhost-switch-cni"):
                cni_bin_host_path = host_paths[init_mounts[mount]]
        for config_file in re.findall(r"cp (/config/\S+) ", script):
            name = config_file.split("/")[-1]
            config_volume = volumes.get(init_mounts.get("/config", ""), {})
            config_maps = find("ConfigMap", config_volume.get("configMap", {}).get("name"))
            if not config_maps or name not in config_maps[0][1].get("data", {}):
                problem(f"{where}: {config_file} is not a key of the mounted ConfigMap")
            elif name == "vhost-switch-cni.json":
                install_settings.update(plugin_settings(config_maps[0][1]["data"][name], f"{config_maps[0][0]} {name}"))
            else:
                config = cni_config(config_maps[0][1]["data"][name], f"{config_maps[0][0]} {name}")
                if name.rsplit(".", 1)[0] != config.get("name"):
                    problem(f"{where}: {name} must be named after its network {config.get('name')} for Multus")
if cni_bin_host_path != "/opt/cni/bin":
    problem(f"the init container must install vhost-switch-cni into /opt/cni/bin (found {cni_bin_host_path})")
if "/opt/cni/bin/vhost-switch-cni" not in installed_cni_files:
    problem("/opt/cni/bin/vhost-switch-cni is never installed")
if any(f.endswith("/vhost-switch-cni.json") for f in installed_cni_files) and SETTINGS_FILE not in installed_cni_files:
    problem(f"the plugin settings must be installed at {SETTINGS_FILE} (found {sorted(installed_cni_files)})")

# --- NetworkAttachmentDefinitions and the example pod --------------------------------------
nads = {}
for where, nad in find("NetworkAttachmentDefinition"):
    config = cni_config(nad["spec"]["config"], where)
    if config.get("name") != nad["metadata"]["name"]:
        problem(f"{where}: the CNI network name {config.get('name')} should be the NAD's name")
    nads[(nad["metadata"].get("namespace", "default"), nad["metadata"]["name"])] = config
    capabilities = config.get("capabilities", {})
    for capability in ("mac", "CNIDeviceInfoFile"):
        if capabilities.get(capability) is not True:
            problem(f"{where}: capabilities lacks \"{capability}\": true (Multus passes it in runtimeConfig only when declared)")
    for key, value in (("api", config.get("api", "unix://" + defaults["api-socket"])[len("unix://"):]), ("apiTokenFile", config.get("apiTokenFile"))):
        if value and os.path.dirname(value) not in install_settings["allowedDirectories"]:
            problem(f"{where}: {key} {value} is not directly in an allowed directory {install_settings['allowedDirectories']}")
if not nads:
    problem("no NetworkAttachmentDefinition in deploy/")

# Example pods: bare Pods and the pod templates of Deployments.
pods = [(where, pod["metadata"], pod["spec"]) for where, pod in find("Pod")]
pods += [(where, {**d["spec"]["template"]["metadata"], "name": d["metadata"]["name"], "namespace": d["metadata"].get("namespace", "default"),
                  "generated": True}, d["spec"]["template"]["spec"]) for where, d in find("Deployment")]
if not find("Pod") or not find("Deployment"):
    problem("deploy/ needs an example Pod and an example Deployment")
SUBPATH = "$(POD_NAMESPACE)_$(POD_NAME)"
for where, metadata, spec in pods:
    namespace = metadata.get("namespace", "default")
    annotation = metadata.get("annotations", {}).get("k8s.v1.cni.cncf.io/networks", "")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for reference in filter(None, (r.strip() for r in annotation.split(","))):
        network, _, ifname = reference.partition("@")
        network_namespace, _, network_name = network.rpartition("/")
        config = nads.get((network_namespace or namespace, network_name))
        if config is None:
            problem(f"{where}: network {network} is not a NetworkAttachmentDefinition in deploy/")
            continue
        if not ifname:
            problem(f"{where}: name the interface ({network}@net1) so the socket path is known")
            continue
        # The pod's own directory, <socket-dir>/<socketDir>/<namespace>_<pod name>, mounted
        # through subPathExpr from the socketDir host path (a Deployment cannot name it).
        socket_dir = f"{defaults['socket-dir']}/{config.get('socketDir', 'pods')}"
        pod_name_length = len(metadata["name"]) + (len("-0123456789-abcde") if metadata.get("generated") else 0)
        if len(namespace) + 1 + pod_name_length > 48:
            problem(f"{where}: {namespace}_{metadata['name']} (with a Deployment's generated suffix) is over the plugin's 48 bytes")
        socket_volume = next((n for n, v in volumes.items() if v.get("hostPath", {}).get("path") == socket_dir), None)
        if socket_volume is None:
            problem(f"{where}: no hostPath volume for the network's socket directory {socket_dir}")
            continue
        for container in spec["containers"]:
            mount = next((m for m in container.get("volumeMounts", []) if m["name"] == socket_volume), None)
            if mount is None:
                continue
            if mount.get("subPathExpr") != SUBPATH:
                problem(f"{where}: {container['name']} must mount {socket_dir} with subPathExpr {SUBPATH} (its own directory only)")
            env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in container.get("env", [])}
            if env.get("POD_NAMESPACE") != "metadata.namespace" or env.get("POD_NAME") != "metadata.name":
                problem(f"{where}: {container['name']} needs POD_NAMESPACE and POD_NAME from the downward API for subPathExpr")
            if config.get("podSocketDir") and config["podSocketDir"] != mount["mountPath"]:
                problem(f"{where}: the NAD's podSocketDir {config['podSocketDir']} is not the mount path {mount['mountPath']}")
            arguments = " ".join(container.get("command", []) + container.get("args", []))
            vdev = re.search(r"net_virtio_user\d+,([^ ]+)", arguments)
            if not vdev:
                problem(f"{where}: {container['name']} mounts the sockets but runs no net_virtio_user")
                continue
            options = dict(item.partition("=")[::2] for item in vdev.group(1).split(","))
            if options.get("path") != f"{mount['mountPath']}/{ifname}.sock":
                problem(f"{where}: virtio-user path {options.get('path')} is not {mount['mountPath']}/{ifname}.sock")
            frontend_server = options.get("server", "0") == "1"
            if frontend_server != (config.get("mode", CNI_DEFAULT_MODE) == "client"):
                problem(f"{where}: virtio-user server={options.get('server', '0')} does not pair with the switch's mode {config.get('mode', CNI_DEFAULT_MODE)}")
            requests = container.get("resources", {}).get("requests", {})
            if not any(key.startswith("hugepages-") for key in requests):
                problem(f"{where}: {container['name']} runs DPDK without hugepages")

# --- the systemd unit ----------------------------------------------------------------------
unit = read("deploy/systemd/vhost-switchd.service")
settings = {}
for line in unit.splitlines():
    if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
exec_start = shlex.split(settings["ExecStart"][0])
if exec_start[0] not in image_files:
    problem(f"systemd: ExecStart {exec_start[0]} is not where the image (and the README) install it")
unit_flags = parse_flags([a for a in exec_start[1:] if not a.startswith("$")], "systemd ExecStart")
check_daemon_flags(unit_flags, "systemd ExecStart")
if "/run/" + settings.get("RuntimeDirectory", [""])[0] != unit_flags.get("run-dir", defaults["run-dir"]):
    problem("systemd: RuntimeDirectory does not match --run-dir")
if "/var/lib/" + settings.get("StateDirectory", [""])[0] != unit_flags.get("state-dir", defaults["state-dir"]):
    problem("systemd: StateDirectory does not match --state-dir")
# Type=notify with a watchdog; ExecReload hands over to the binary on disk with ExecStart's flags,
# through the reload script the header installs, and the takeover process may notify.
for key, value in (("Type", "notify"), ("NotifyAccess", "all")):
    if settings.get(key, [""])[0] != value:
        problem(f"systemd: {key}={value} is needed (READY=1; MAINPID= from the takeover process ExecReload starts)")
if not settings.get("WatchdogSec"):
    problem("systemd: WatchdogSec is not set (the daemon pings while its threads make progress)")
reload = shlex.split(settings.get("ExecReload", [""])[0])
reload_script = "/usr/local/libexec/vhost-switchd-reload"
if reload[:3] != [reload_script, "$MAINPID", exec_start[0]] or reload[3:] != exec_start[1:]:
    problem(f"systemd: ExecReload must be {reload_script} $MAINPID followed by ExecStart's command line, found {reload}")
if f"install -m 0755 deploy/systemd/{os.path.basename(reload_script)} {os.path.dirname(reload_script)}/" not in unit:
    problem(f"systemd: the unit's install steps do not install {reload_script}")
if not os.access(os.path.join(DEPLOY, "systemd", os.path.basename(reload_script)), os.X_OK):
    problem(f"deploy/systemd/{os.path.basename(reload_script)} is missing or not executable")
if "AF_PACKET" not in " ".join(settings.get("RestrictAddressFamilies", [])):
    problem("systemd: RestrictAddressFamilies must allow AF_PACKET")
bounding = " ".join(settings.get("CapabilityBoundingSet", []))
for capability in ("CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_CHOWN"):
    if capability not in bounding:
        problem(f"systemd: CapabilityBoundingSet lacks {capability}")
if problems:
    print("\n".join(problems))
    sys.exit(1)
print(f"deploy/ is consistent: {len(documents)} YAML documents, image {sorted(image_files)}")
