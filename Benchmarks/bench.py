#!/usr/bin/env python3
"""vhost-switchd against DPDK's own vhost back-end, in one run (see Benchmarks/README.md).

Started by Benchmarks/run.sh, which builds everything and exports:
  BENCH_DAEMON      path of the release vhost-switchd binary
  BENCH_RAWGEN      path of the compiled tools/rawgen.c
  BENCH_CORE_LATENCY path of the compiled tools/core_latency.c (optional)
  BENCH_XDPDROP     path of the compiled tools/xdpdrop.c (the namespace end of vhost<->kernel)
  BENCH_MICRO       path of the microbenchmark executable (optional)
  BENCH_TAG         unique short tag for names (netns, veth, file prefixes)
  BENCH_WORKDIR     scratch directory (sockets, configs, logs)
Tunables (environment):
  BENCH_WINDOWS=5 BENCH_WINDOW_SECONDS=10 BENCH_WARMUP_SECONDS=3 BENCH_IDLE_SECONDS=10
  BENCH_ONLY=vhost,rings,segments,kernel,idle,churn,micro,multiqueue,profile (comma list; default: all but profile)
  BENCH_SEGMENT_VLAN=10 (segments: the access VLAN of both ports, or the VLAN both trunks carry)
  BENCH_RING_VARIANTS="packed_vq=1;packed_vq=1,in_order=1;in_order=1" (rings: virtio-user options, 64 B)
  BENCH_PROFILE=1 (add the perf profile to a full run) BENCH_PROFILE_SECONDS=10
  BENCH_PROFILE_OPTIONS=packed_vq=1 (virtio-user options of the profiled front-end)
  BENCH_SIZES=64,1518  BENCH_FE_CPU=0 BENCH_BE_CPU=1  BENCH_OVS=1 (try OVS-DPDK)
  BENCH_BASELINE_DAEMON=path (A/B: the vhost rows also run this other build of vhost-switchd,
    e.g. an older commit's .build-bench/release/vhost-switchd, in the same rounds, and print
    ours against it and each build's ratio to DPDK, round by round)
  BENCH_MQ_QUEUES=4 (multiqueue: queue pairs per port) BENCH_MQ_PMD_CPUS=1,2 (CPUs of the two
  poll threads; default BE_CPU and the next one, or BE_CPU alone on a machine without it)
Nothing here is pass/fail: every figure is printed, and stored in Benchmarks/results/latest.json.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
DAEMON = os.environ.get("BENCH_DAEMON", "")
BASELINE_DAEMON = os.environ.get("BENCH_BASELINE_DAEMON", "")
RAWGEN = os.environ.get("BENCH_RAWGEN", "")
CORE_LATENCY = os.environ.get("BENCH_CORE_LATENCY", "")
XDPDROP = os.environ.get("BENCH_XDPDROP", "")
MICRO = os.environ.get("BENCH_MICRO", "")
TAG = os.environ.get("BENCH_TAG", "vsb%d" % os.getpid())
WORK = os.environ.get("BENCH_WORKDIR", "/tmp/%s" % TAG)
WINDOWS = int(os.environ.get("BENCH_WINDOWS", "5"))
WINDOW_SECONDS = float(os.environ.get("BENCH_WINDOW_SECONDS", "10"))
WARMUP_SECONDS = float(os.environ.get("BENCH_WARMUP_SECONDS", "3"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "10"))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "vhost,rings,segments,kernel,idle,churn,micro,multiqueue").split(",")))
# Front-end ring layouts for the "rings" rows: virtio-user devargs, same on both back-ends.
RING_VARIANTS = [v for v in os.environ.get("BENCH_RING_VARIANTS", "packed_vq=1;packed_vq=1,in_order=1;in_order=1").split(";") if v]
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "64,1518").split(",") if s]
SEGMENT_VLAN = int(os.environ.get("BENCH_SEGMENT_VLAN", "10"))
# The "segments" rows (issue 18): our back-end only, all ports alike. Each variant: its name, the
# policy keys of every port, and whether the loop's frames are tagged (injected, see segment_pair).
SEGMENT_VARIANTS = [("untagged", {}, False),
                    ("access", {"vlan": SEGMENT_VLAN}, False),
                    ("trunk", {"trunk": [SEGMENT_VLAN]}, True)]
VLAN_RESPONDER = os.path.join(HERE, "..", "scripts", "vlan-responder.py")
INJECT_MAC = "02:00:00:00:00:99"
FE_CPU = int(os.environ.get("BENCH_FE_CPU", "0"))
BE_CPU = int(os.environ.get("BENCH_BE_CPU", "1"))
MQ_QUEUES = int(os.environ.get("BENCH_MQ_QUEUES", "4"))
MQ_PMD_CPUS = os.environ.get("BENCH_MQ_PMD_CPUS") or (
    "%d,%d" % (BE_CPU, BE_CPU + 1) if (os.cpu_count() or 1) > BE_CPU + 1 and BE_CPU + 1 != FE_CPU else str(BE_CPU))
# Multiqueue rows: the same guest pair served by one poll thread, then by two.
MQ_VARIANTS = [("1 thread", 1, str(BE_CPU)), ("2 threads", 2, MQ_PMD_CPUS)]
MAC0, MAC1 = "02:00:00:00:00:01", "02:00:00:00:00:02"
NS_MAC = "02:00:00:00:00:10"

LOG_DIR = os.path.join(WORK, "logs")
CHILDREN = []  # every process we started, terminated at exit


def log(msg):
    print("bench: %s" % msg, file=sys.stderr, flush=True)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def run(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# --------------------------------------------------------------------------------------
# dpdk-testpmd, driven interactively (docs/TESTPMD.md)

class Testpmd:
    PROMPT = "testpmd> "

    def __init__(self, name, vdevs, app_args, cpu, mbufs=8192, wait=True, extra_eal=()):
        self.name = name
        self.prefix = "%s%s" % (TAG, name)
        eal = ["--lcores", "0@%d,1@%d" % (cpu, cpu), "--no-pci", "--file-prefix", self.prefix,
               "--in-memory", "--single-file-segments"] + list(extra_eal)
        for v in vdevs:
            eal += ["--vdev", v]
        self.cmdline = ["stdbuf", "-oL", "dpdk-testpmd"] + eal + ["--", "-i", "--nb-cores=1",
                                                                  "--total-num-mbufs=%d" % mbufs] + list(app_args)
        self.logfile = open(os.path.join(LOG_DIR, "testpmd-%s.log" % name), "a")
        self.logfile.write("$ %s\n" % " ".join(self.cmdline))
        self.logfile.flush()
        self.buf = ""
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(self.cmdline, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, bufsize=0)
        CHILDREN.append(self.proc)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if wait:
            self.wait_prompt(0, timeout=60)

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            text = chunk.decode("utf-8", "replace")
            self.logfile.write(text)
            self.logfile.flush()
            with self.cond:
                self.buf += text
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_prompt(self, pos, timeout=30):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                i = self.buf.find(self.PROMPT, pos)
                if i >= 0:
                    return self.buf[pos:i]
                if self.proc.poll() is not None:
                    raise RuntimeError("testpmd %s exited (%s); see %s" % (self.name, self.proc.returncode, self.logfile.name))
                left = deadline - time.time()
                if left <= 0:
                    raise RuntimeError("testpmd %s: no prompt within %ss; see %s" % (self.name, timeout, self.logfile.name))
                self.cond.wait(min(left, 0.5))

    def cmd(self, text, timeout=30):
        with self.cond:
            pos = len(self.buf)
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        return self.wait_prompt(pos, timeout)

    def port_stats(self):
        out = self.cmd("show port stats all")
        stats = {}
        for m in re.finditer(r"NIC statistics for port (\d+).*?RX-packets:\s*(\d+).*?RX-bytes:\s*(\d+).*?"
                             r"TX-packets:\s*(\d+).*?TX-bytes:\s*(\d+)", out, re.S):
            stats[int(m.group(1))] = {"rx": int(m.group(2)), "rx_bytes": int(m.group(3)),
                                      "tx": int(m.group(4)), "tx_bytes": int(m.group(5))}
        return stats

    def fwd_cycles(self):
        """(busy cycles, packets) of the forwarding lcore since `start` (--record-core-cycles)."""
        out = self.cmd("show fwd stats all")
        m = re.search(r"(?:busy|total) cycles=(\d+) / total \S+ packets=(\d+)", out)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def link_up(self, ports):
        out = self.cmd("show port summary all")
        up = set()
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0].isdigit() and " up " in (" " + line + " "):
                up.add(int(parts[0]))
        return all(p in up for p in ports)

    def wait_link(self, ports, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.link_up(ports):
                return True
            time.sleep(0.2)
        return False

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=8)
            except Exception:
                pass
        stop_process(self.proc)
        self.logfile.close()


def stop_process(proc, timeout=5):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------
# vhost-switchd

class Daemon:
    def __init__(self, name, ports, busy_poll=True, pmd_cpu=BE_CPU, base=None, pmd_threads=1, binary=None, state_dir=None):
        self.dir = os.path.join(base or WORK, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.socket_dir = os.path.join(self.dir, "sockets")
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.socket_dir)
        config = os.path.join(self.dir, "config.json")
        with open(config, "w") as f:
            json.dump({"ports": ports}, f)
        cmd = ["taskset", "-c", str(FE_CPU), binary or DAEMON, "--config", config, "--socket-dir", self.socket_dir,
               "--run-dir", self.run_dir, "--state-dir", state_dir or os.path.join(self.dir, "state"),
               "--pmd-threads", str(pmd_threads), "--pmd-cpus", str(pmd_cpu), "--log-level", "warning"]
        if busy_poll:
            cmd.append("--busy-poll")
        self.logfile = open(os.path.join(LOG_DIR, "daemon-%s.log" % name), "a")
        self.logfile.write("$ %s\n" % " ".join(cmd))
        self.logfile.flush()
        self.proc = subprocess.Popen(cmd, stdout=self.logfile, stderr=subprocess.STDOUT)
        CHILDREN.append(self.proc)
        self.api = os.path.join(self.run_dir, "api.sock")
        deadline = time.time() + 30
        while not os.path.exists(self.api):
            if self.proc.poll() is not None:
                raise RuntimeError("vhost-switchd exited (%s); see %s" % (self.proc.returncode, self.logfile.name))
            if time.time() > deadline:
                raise RuntimeError("vhost-switchd: no API socket after 30 s")
            time.sleep(0.05)

    def socket(self, name):
        return os.path.join(self.socket_dir, name)

    def stats(self):
        out = run(["curl", "-sS", "--max-time", "5", "--unix-socket", self.api, "http://localhost/v1/stats"])
        return json.loads(out.stdout)

    def wait_rings_polled(self, ports, rings, timeout=10):
        """Waits until each port's first `rings` vrings are enabled and started, and its
        transmit rings placed on a poll thread.
        A guest's link comes up with its first queue pair; the others follow, and frames a
        front-end sends before the switch polls the destination's rings are dropped (tx_first's
        loop in that direction is then lost for the whole window)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            ready = True
            for port in ports:
                out = run(["curl", "-sS", "--max-time", "5", "--unix-socket", self.api,
                           "http://localhost/v1/ports/%s/vrings" % port], check=False)
                try:
                    vrings = json.loads(out.stdout)
                except ValueError:
                    vrings = []
                vrings = vrings.get("vrings", []) if isinstance(vrings, dict) else vrings
                # Receive rings (guest_rx) are written, not polled: only transmit rings have a thread.
                enabled = [v for v in vrings if v.get("enabled") and v.get("started", True)]
                polled = [v for v in enabled if v.get("direction") == "guest_tx" and v.get("poll_thread") is not None]
                ready = ready and len(enabled) >= rings and len(polled) >= rings // 2
            if ready:
                return True
            time.sleep(0.05)
        return False

    def cycles(self):
        """Busy cycles and packets of every poll thread together."""
        threads = self.stats()["poll_threads"]
        return (sum(t["busy_cycles"] for t in threads), sum(t["packets"] for t in threads))

    def stop(self):
        stop_process(self.proc)
        self.logfile.close()


# --------------------------------------------------------------------------------------
# port churn (issue 19): REST creates and deletes over one keep-alive connection

class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.unix_path)
        self.sock = sock


CHURN_ROUNDS = int(os.environ.get("BENCH_CHURN_ROUNDS", "5"))


def churn_run(count=1000, probes=200):
    """`count` creates then `count` deletes of vhost-user ports (server mode), timed in total;
    then the per-call cost at 100 and at `count` ports: the median of `probes` create+delete
    pairs of one extra port at each size, the sizes alternating over BENCH_CHURN_ROUNDS rounds
    (so that the machine's drift hits both sizes alike). The sockets and run directory are on
    tmpfs (/dev/shm), as /run is on a node; the state directory is on disk (under
    BENCH_WORKDIR), as /var/lib/vhost-switch is, so every change's fdatasync is paid. This
    client runs on the daemon's control CPU (FE_CPU), not on the poll thread's, as a node's
    orchestrator would: left to the scheduler it moved between the two CPUs and the per-call
    medians moved with it (0.24 or 0.40 ms at the same port count)."""
    state_dir = os.path.join(WORK, "churn-state")
    shutil.rmtree(state_dir, ignore_errors=True)
    daemon = Daemon("churn-%s" % TAG, [], busy_poll=False, base="/dev/shm" if os.path.isdir("/dev/shm") else None,
                    state_dir=state_dir)
    conn = UnixHTTP(daemon.api)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {FE_CPU})

    def call(method, path, body=None):
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"} if body is not None else {})
        reply = conn.getresponse()
        reply.read()
        return reply.status

    def create(i):
        status = call("POST", "/v1/ports", {"name": "c%d" % i, "type": "vhost-user", "socket": {"path": "c%d.sock" % i}})
        if status != 201:
            raise RuntimeError("create c%d: HTTP %d" % (i, status))

    def delete(i):
        status = call("DELETE", "/v1/ports/c%d" % i)
        if status != 204:
            raise RuntimeError("delete c%d: HTTP %d" % (i, status))

    present = []

    def ensure(existing):
        while len(present) < existing:
            create(len(present))
            present.append(len(present))
        while len(present) > existing:
            delete(present.pop())

    def probe():
        times = []
        for _ in range(probes // CHURN_ROUNDS):
            t = time.perf_counter()
            create(count + 1)
            delete(count + 1)
            times.append((time.perf_counter() - t) / 2 * 1000)
        return times

    def probe_ms():
        # The two sizes alternate, round after round, so that the machine's drift (other
        # processes, the vCPUs moving) hits both alike: the ratio is the median of the
        # rounds' ratios, each size's time the median of all its calls.
        small, large, ratios = [], [], []
        for _ in range(CHURN_ROUNDS):
            ensure(100)
            at_small = probe()
            ensure(count)
            at_large = probe()
            ratios.append(median(at_large) / median(at_small))
            small += at_small
            large += at_large
        ensure(0)
        return median(small), median(large), median(ratios)

    try:
        t0 = time.perf_counter()
        for i in range(count):
            create(i)
        t1 = time.perf_counter()
        for i in range(count):
            delete(i)
        t2 = time.perf_counter()
        at100, atcount, ratio = probe_ms()
        return {"ports": count, "create_seconds": t1 - t0, "delete_seconds": t2 - t1, "total_seconds": t2 - t0,
                "ms_per_call_at_100": at100, "ms_per_call_at_%d" % count: atcount,
                "per_call_ratio": ratio}
    finally:
        os.sched_setaffinity(0, affinity)
        conn.close()
        daemon.stop()
        shutil.rmtree(daemon.dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# measurement windows

def measure_windows(rate_sources, cycle_source, windows_wanted=None, cycle_reset=None):
    """rate_sources: name -> callable returning a packet counter. cycle_source: callable
    returning (busy cycles, packets) of the back-end core, or None; cycle_reset, if given,
    clears those counters at each window start (OVS: pmd-stats-clear).
    Returns per-window Mpps per source and cycles/packet, and their medians."""
    time.sleep(WARMUP_SECONDS)
    windows = []
    for _ in range(windows_wanted or WINDOWS):
        t0 = time.time()
        c0 = {k: f() for k, f in rate_sources.items()}
        if cycle_reset:
            cycle_reset()
        y0 = cycle_source() if cycle_source else None
        time.sleep(WINDOW_SECONDS)
        t1 = time.time()
        c1 = {k: f() for k, f in rate_sources.items()}
        y1 = cycle_source() if cycle_source else None
        w = {k: (c1[k] - c0[k]) / (t1 - t0) / 1e6 for k in rate_sources}
        if y0 and y1 and y1[1] > y0[1]:
            w["cycles_per_packet"] = (y1[0] - y0[0]) / (y1[1] - y0[1])
        else:
            w["cycles_per_packet"] = None
        windows.append(w)
    keys = list(rate_sources) + ["cycles_per_packet"]
    return {"windows": windows, "median": {k: median([w[k] for w in windows]) for k in keys}}


# --------------------------------------------------------------------------------------
# (a) vhost <-> vhost

def frontend_two_ports(sock0, sock1, size, name, options="", queues=1):
    """With several queues, tx_first sends several flows (--txonly-multi-flow: source IPs
    vary) on every queue, and mac forwarding keeps each flow on its queue pair."""
    extra = "," + options if options else ""
    multi = ["--rxq=%d" % queues, "--txq=%d" % queues, "--txonly-multi-flow"] if queues > 1 else []
    fe = Testpmd(name, ["net_virtio_user0,path=%s,queues=%d,mac=%s%s" % (sock0, queues, MAC0, extra),
                        "net_virtio_user1,path=%s,queues=%d,mac=%s%s" % (sock1, queues, MAC1, extra)],
                 ["--forward-mode=mac", "--burst=32", "--eth-peer=0,%s" % MAC1, "--eth-peer=1,%s" % MAC0] + multi,
                 cpu=FE_CPU)
    if not fe.wait_link([0, 1]):
        raise RuntimeError("front-end links did not come up")
    fe.cmd("set txpkts %d" % size)
    return fe


def core_round_trip_ns():
    """Cache-line round trip between the front-end's and the back-end's CPU (ns), or None.
    Measured with both CPUs idle (before set-up, after tear-down): on a shared VM the host's
    placement of the two vCPUs moves it between ~100 and ~400 ns, and every back-end's
    cycles per packet follow it."""
    if not CORE_LATENCY or not os.path.exists(CORE_LATENCY):
        return None
    out = run([CORE_LATENCY, str(FE_CPU), str(BE_CPU), "50000"], check=False)
    try:
        return float(out.stdout.strip())
    except ValueError:
        return None


def vhost_pair_run(backend, size, options="", windows=None, segment=None, injector=None, multiqueue=None):
    """One back-end ('ours' or 'dpdk'), one frame size, the front-end's virtio-user options
    (e.g. packed_vq=1: DPDK's net_vhost negotiates the packed ring too). For 'ours' only:
    segment, a SEGMENT_VARIANTS entry, and injector, a Veth whose host end becomes a third
    port (af-packet, same policy keys) through which segment_pair starts tagged loops;
    multiqueue, an MQ_VARIANTS entry: MQ_QUEUES queue pairs per port, that many poll threads."""
    queues, pmd_threads, pmd_cpus = (MQ_QUEUES, multiqueue[1], multiqueue[2]) if multiqueue else (1, 1, BE_CPU)
    tag = "".join(c for c in options + (segment[0] if segment else "") + (multiqueue[0] if multiqueue else "") if c.isalnum())
    sock_dir = os.path.join(WORK, "vv-%s-%d%s" % (backend, size, tag))
    shutil.rmtree(sock_dir, ignore_errors=True)
    os.makedirs(sock_dir)
    daemon = be = fe = ovs = None
    cycle_reset = None
    latency_before = core_round_trip_ns()
    result = None
    try:
        if backend in ("ours", "baseline"):
            ports = [{"name": "vm0", "type": "vhost-user", "socket": {"path": "vm0.sock", "mode": "server"}, "queues": queues},
                     {"name": "vm1", "type": "vhost-user", "socket": {"path": "vm1.sock", "mode": "server"}, "queues": queues}]
            if segment:
                ports.append({"name": "inject", "type": "af-packet", "interface": injector.host_if})
                ports = [dict(port, **segment[1]) for port in ports]
            daemon = Daemon("vv-%s-%d%s" % (backend, size, tag), ports, pmd_cpu=pmd_cpus, pmd_threads=pmd_threads,
                            binary=BASELINE_DAEMON if backend == "baseline" else None)
            s0, s1 = daemon.socket("vm0.sock"), daemon.socket("vm1.sock")
            deadline = time.time() + 10
            while not (os.path.exists(s0) and os.path.exists(s1)) and time.time() < deadline:
                time.sleep(0.05)
            cycles = daemon.cycles
        elif backend == "ovs":
            ovs = OvsDpdk("ovs-%d%s" % (size, tag))
            s0, s1 = ovs.add_vhost_ports(["vh0", "vh1"])
            cycles, cycle_reset = ovs.pmd_cycles, ovs.pmd_clear
        else:
            s0, s1 = os.path.join(sock_dir, "vh0.sock"), os.path.join(sock_dir, "vh1.sock")
            be = Testpmd("be%d%s" % (size, tag), ["net_vhost0,iface=%s,queues=1" % s0, "net_vhost1,iface=%s,queues=1" % s1],
                         ["--forward-mode=io", "--record-core-cycles"], cpu=BE_CPU)
            cycles = be.fwd_cycles
        fe = frontend_two_ports(s0, s1, size, "fe%s%d%s" % (backend[0], size, tag), options, queues)
        if daemon and not daemon.wait_rings_polled(["vm0", "vm1"], 2 * queues):
            log("  not every ring of vm0 and vm1 was polled after 10 s: tx_first may lose a direction")
        if be:
            be.wait_link([0, 1])
            be.cmd("start")
        if segment and segment[2]:
            fe.cmd("start")
            inject_tagged_loop(injector, size)
        else:
            fe.cmd("start tx_first 16")
        result = measure_windows({"p0_to_p1": lambda: fe.port_stats()[1]["rx"],
                                  "p1_to_p0": lambda: fe.port_stats()[0]["rx"]}, cycles, windows, cycle_reset)
        if daemon and multiqueue:
            # Where the rings were served and how busy each thread was, for the record.
            result["poll_threads"] = [{"queues": t["queues"], "packets": t["packets"], "busy_cycles": t["busy_cycles"]}
                                      for t in daemon.stats()["poll_threads"]]
        fe.cmd("stop")
        if be:
            be.cmd("stop")
    finally:
        if fe:
            fe.quit()
        if be:
            be.quit()
        if daemon:
            daemon.stop()
        if ovs:
            ovs.stop()
    latency_after = core_round_trip_ns()
    for w in result["windows"]:
        w["core_round_trip_ns"] = [latency_before, latency_after]
    return result


def interleaved_pair(size, options=""):
    """Every back-end, alternating one window each (ours, dpdk[, ovs], ours, ...), every run
    set up afresh: on a shared machine whose speed drifts, drift hits all alike. Returns
    each back-end's windows and medians, and the medians of the per-round ratios of ours
    to each other back-end. OVS-DPDK runs in the plain rows (no virtio-user options) only."""
    backends = ["ours", "dpdk"] + (["ovs"] if not options and not OVS_REASON else []) + (["baseline"] if BASELINE_DAEMON else [])
    entry = {b: {"windows": []} for b in backends}
    if "ovs" not in backends:
        entry["ovs"] = {"not_run": OVS_REASON or "only in the plain vhost rows"}
    for round_number in range(WINDOWS):
        for backend in backends:
            log("  round %d/%d, back-end %s" % (round_number + 1, WINDOWS, backend))
            try:
                entry[backend]["windows"] += vhost_pair_run(backend, size, options, windows=1)["windows"]
            except Exception as e:  # keep going: nothing is pass/fail
                log("  failed: %s" % e)
                entry[backend].setdefault("errors", []).append(str(e))
    keys = ("p0_to_p1", "p1_to_p0", "cycles_per_packet")
    for backend in backends:
        windows = entry[backend]["windows"]
        entry[backend]["median"] = {k: median([w.get(k) for w in windows]) for k in keys}
    for other in backends[1:]:
        pairs = list(zip(entry["ours"]["windows"], entry[other]["windows"]))
        entry["round_ratio_median_" + other] = {k: median([ratio(o.get(k), d.get(k)) for o, d in pairs]) for k in keys}
    entry["by_core_distance"] = by_core_distance(entry["ours"]["windows"], entry["dpdk"]["windows"])
    if BASELINE_DAEMON:
        pairs = list(zip(entry["baseline"]["windows"], entry["dpdk"]["windows"]))
        entry["baseline_round_ratio_median_dpdk"] = {k: median([ratio(b.get(k), d.get(k)) for b, d in pairs]) for k in keys}
    return entry


def core_distance(window):
    """'near' (round trip under 200 ns before and after the window), 'far' (over 300 ns both
    times) or None (unknown, or the host moved a vCPU meanwhile)."""
    before, after = (window.get("core_round_trip_ns") or [None, None])
    if before is None or after is None:
        return None
    if max(before, after) < 200:
        return "near"
    if min(before, after) > 300:
        return "far"
    return None


def by_core_distance(ours_windows, dpdk_windows):
    """Rounds whose two windows (ours, DPDK) saw the same core distance: per class, the
    medians of each back-end and of the per-round ratios. Comparing like with like: a
    round where only one of the two had its cores far apart says nothing."""
    classes = {}
    for o, d in zip(ours_windows, dpdk_windows):
        c = core_distance(o)
        if c is None or c != core_distance(d):
            continue
        classes.setdefault(c, []).append((o, d))
    out = {}
    for c, pairs in classes.items():
        out[c] = {"rounds": len(pairs)}
        for k in ("p0_to_p1", "cycles_per_packet"):
            out[c][k] = {"ours": median([o.get(k) for o, _ in pairs]), "dpdk": median([d.get(k) for _, d in pairs]),
                         "ratio": median([ratio(o.get(k), d.get(k)) for o, d in pairs])}
    return out


def inject_tagged_loop(injector, size):
    """Starts the front-end's loop with tagged frames. testpmd cannot tag (virtio-user inserts
    VLAN tags only in tx_prepare, which its forwarding engines do not call), but its mac
    forwarding keeps a received tag: so 512 broadcasts tagged SEGMENT_VLAN, `size` bytes with
    the tag, go in through the third (trunk) port; the switch floods each to both front-end
    ports, which send them on, tagged, to each other's MAC for good (as tx_first's 2 x 16
    bursts of 32 would, untagged)."""
    run(["ip", "netns", "exec", injector.ns, "python3", VLAN_RESPONDER, "send", "--iface", injector.ns_if, "--mac", INJECT_MAC,
         "--vlan", str(SEGMENT_VLAN), "--count", "512", "--target", "10.0.0.2", "--sender", "10.0.0.1", "--length", str(size)])


def segment_pair(size):
    """Our back-end with all ports untagged, on one access VLAN, and as trunks whose frames
    carry the tag (SEGMENT_VARIANTS), alternating one window each, every run set up afresh
    (as interleaved_pair). Every variant has the idle third port (af-packet, the injector), so
    all poll the same queues. Returns each variant's windows and medians, and per variant the
    medians of the per-round ratios to untagged (the issue's bar: within 5%)."""
    entry = {name: {"windows": []} for name, _, _ in SEGMENT_VARIANTS}
    injector = Veth()
    # No IPv6 on the veth: its MLD reports would enter the loop through the third port.
    for where, interface in ((None, injector.host_if), (injector.ns, injector.ns_if)):
        run((["ip", "netns", "exec", where] if where else []) + ["sysctl", "-q", "-w", "net.ipv6.conf.%s.disable_ipv6=1" % interface],
            check=False)
    try:
        alternate_variants(entry, SEGMENT_VARIANTS, "untagged",
                           lambda variant: vhost_pair_run("ours", size, windows=1, segment=variant, injector=injector))
    finally:
        injector.delete()
    return entry


def alternate_variants(entry, variants, baseline, run_window):
    """WINDOWS rounds of one window per variant (run_window(variant) -> a vhost_pair_run
    result), each set up afresh; then each variant's medians and the medians of its
    per-round ratios to the baseline variant, into entry[name]."""
    for round_number in range(WINDOWS):
        for variant in variants:
            log("  round %d/%d, %s" % (round_number + 1, WINDOWS, variant[0]))
            try:
                result = run_window(variant)
                entry[variant[0]]["windows"] += result["windows"]
                if "poll_threads" in result:
                    entry[variant[0]].setdefault("poll_threads", []).append(result["poll_threads"])
            except Exception as e:  # keep going: nothing is pass/fail
                log("  failed: %s" % e)
                entry[variant[0]].setdefault("errors", []).append(str(e))
    keys = ("p0_to_p1", "p1_to_p0", "cycles_per_packet")
    for variant in variants:
        name = variant[0]
        entry[name]["median"] = {k: median([w.get(k) for w in entry[name]["windows"]]) for k in keys}
        pairs = list(zip(entry[name]["windows"], entry[baseline]["windows"]))
        entry[name]["round_ratio_median_" + baseline] = {k: median([ratio(v.get(k), u.get(k)) for v, u in pairs]) for k in keys}


def multiqueue_pair(size):
    """Two guests of MQ_QUEUES queue pairs each (testpmd, several flows per queue), our
    back-end with one poll thread and with two (MQ_VARIANTS), alternating one window each.
    Receive rings are dealt over the threads; each guest's receive queues are chosen by flow
    hash. Returns each variant's windows, medians and poll-thread placement, and the
    two-thread figures' per-round ratios to one thread."""
    entry = {name: {"windows": []} for name, _, _ in MQ_VARIANTS}
    alternate_variants(entry, MQ_VARIANTS, MQ_VARIANTS[0][0], lambda variant: vhost_pair_run("ours", size, windows=1, multiqueue=variant))
    return entry


def variant_rows(label, entry, variants):
    """Table rows of alternate_variants: each later variant's figure in 'ours', the first
    (baseline) variant's in 'dpdk', and the ratio variant/baseline. label: the row name with
    {name} where the variant's name goes."""
    rows = []
    baseline = variants[0][0]
    base = entry[baseline]["median"]
    for variant in variants[1:]:
        name = variant[0]
        figures, ratios = entry[name]["median"], entry[name]["round_ratio_median_" + baseline]
        for key, what in (("p0_to_p1", "p0_to_p1 Mpps"), ("p1_to_p0", "p1_to_p0 Mpps"), ("cycles_per_packet", "busy cycles/pkt")):
            rows.append(("%s %s" % (label.format(name=name), what), figures.get(key), base.get(key), ratios.get(key), None, None))
    return rows


def vhost_rows(label, entry):
    """Table rows (name, ours, dpdk, ours/dpdk, ovs, ours/ovs) of one interleaved entry."""
    rows = []
    om, dm = entry["ours"]["median"], entry["dpdk"]["median"]
    vm = entry["ovs"].get("median", {})
    rd, rv = entry.get("round_ratio_median_dpdk", {}), entry.get("round_ratio_median_ovs", {})
    for key, name in (("p0_to_p1", "p0_to_p1 Mpps"), ("p1_to_p0", "p1_to_p0 Mpps"), ("cycles_per_packet", "busy cycles/pkt")):
        rows.append(("%s %s" % (label, name), om.get(key), dm.get(key), rd.get(key), vm.get(key), rv.get(key)))
    for c, figures in sorted(entry.get("by_core_distance", {}).items()):
        for key, name in (("p0_to_p1", "Mpps"), ("cycles_per_packet", "cycles/pkt")):
            f = figures[key]
            rows.append(("  cores %s (%d rounds) %s" % (c, figures["rounds"], name), f["ours"], f["dpdk"], f["ratio"], None, None))
    if "baseline" in entry:
        # A/B: ours against the baseline build in the 'dpdk' columns, then the baseline's own
        # ratio to DPDK (its figure in 'ours'), both as medians of per-round ratios.
        bm, rb = entry["baseline"]["median"], entry.get("round_ratio_median_baseline", {})
        bd = entry.get("baseline_round_ratio_median_dpdk", {})
        for key, name in (("p0_to_p1", "p0_to_p1 Mpps"), ("cycles_per_packet", "busy cycles/pkt")):
            rows.append(("  A/B ours vs baseline build %s" % name, om.get(key), bm.get(key), rb.get(key), None, None))
            rows.append(("  A/B baseline build vs dpdk %s" % name, bm.get(key), dm.get(key), bd.get(key), None, None))
    return rows


# --------------------------------------------------------------------------------------
# (c) OVS-DPDK: a private ovsdb-server + ovs-vswitchd (own run/db/log dirs under WORK, never
# the system service), netdev bridge with two dpdkvhostuser ports (OVS is the server, the
# front-end connects like it does to the other back-ends), default NORMAL flow.

OVS_VSWITCHD = os.environ.get("BENCH_OVS_VSWITCHD", "ovs-vswitchd")
OVS_REASON = None  # set in main(): why OVS-DPDK cannot run here, if it cannot


def ovs_unavailable():
    """Why OVS-DPDK cannot run here, or None."""
    if os.environ.get("BENCH_OVS", "1") == "0":
        return "BENCH_OVS=0"
    for tool in ("ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-appctl", OVS_VSWITCHD):
        if not shutil.which(tool):
            return "%s not installed (apt-get install openvswitch-switch-dpdk)" % tool
    version = run([OVS_VSWITCHD, "--version"], check=False).stdout
    if "DPDK" not in version:
        return "%s is not the DPDK build (update-alternatives --set ovs-vswitchd " \
               "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk)" % shutil.which(OVS_VSWITCHD)
    return None


class OvsDpdk:
    def __init__(self, name):
        self.procs, self.logs = [], []
        try:
            self._start(name)
        except Exception:
            self.stop()
            raise

    def _start(self, name):
        self.dir = os.path.join(WORK, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.run_dir)
        self.prefix = "%s%s" % (TAG, name.replace("-", ""))
        # ovs-appctl/ovs-vsctl/ovs-vswitchd find pid files, control and vhost sockets here.
        self.env = dict(os.environ, OVS_RUNDIR=self.run_dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir)
        self.db_sock = os.path.join(self.run_dir, "db.sock")
        db = os.path.join(self.dir, "conf.db")
        self._run(["ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"])
        self.db_log = open(os.path.join(LOG_DIR, "ovsdb-server-%s.log" % name), "a")
        self.logs.append(self.db_log)
        self._spawn(["taskset", "-c", str(FE_CPU), "ovsdb-server", db, "--remote=punix:%s" % self.db_sock,
                     "--pidfile=%s" % os.path.join(self.run_dir, "ovsdb-server.pid"),
                     "--unixctl=%s" % os.path.join(self.run_dir, "ovsdb-server.ctl")], self.db_log)
        self._wait_path(self.db_sock, "ovsdb-server socket")
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   "other_config:dpdk-init=true",
                   "other_config:dpdk-lcore-mask=0x%x" % (1 << FE_CPU),
                   "other_config:pmd-cpu-mask=0x%x" % (1 << BE_CPU),
                   "other_config:dpdk-socket-mem=512",
                   'other_config:dpdk-extra="--file-prefix=%s --no-pci --huge-unlink"' % self.prefix)
        self.log_path = os.path.join(LOG_DIR, "ovs-vswitchd-%s.log" % name)
        self.out = open(os.path.join(LOG_DIR, "ovs-vswitchd-%s.out" % name), "a")
        self.logs.append(self.out)
        # The rest of ovs-vswitchd next to our daemon's non-poll threads; OVS pins its PMD itself.
        self.vswitchd = self._spawn(["taskset", "-c", str(FE_CPU), OVS_VSWITCHD, "unix:%s" % self.db_sock,
                                     "--pidfile=%s" % os.path.join(self.run_dir, "ovs-vswitchd.pid"),
                                     "--log-file=%s" % self.log_path], self.out)
        out = self.vsctl("--timeout=60", "wait-until", "Open_vSwitch", ".", "dpdk_initialized=true", check=False)
        if out.returncode != 0:
            raise RuntimeError("ovs-vswitchd: DPDK did not initialise (%s); see %s" % (out.stdout.strip() or
                                                                                   self._last_error(), self.log_path))

    def _run(self, cmd, check=True):
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env)
        if check and out.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(cmd[:3]), out.stdout.strip()[-300:]))
        return out

    def _spawn(self, cmd, logfile):
        logfile.write("$ %s\n" % " ".join(cmd))
        logfile.flush()
        proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=self.env)
        CHILDREN.append(proc)
        self.procs.append(proc)
        return proc

    def _wait_path(self, path, what, timeout=30):
        deadline = time.time() + timeout
        while not os.path.exists(path):
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited (%s) before %s appeared: %s"
                                       % (proc.args[3], proc.returncode, what, self._last_error()))
            if time.time() > deadline:
                raise RuntimeError("no %s after %d s" % (what, timeout))
            time.sleep(0.05)

    def _last_error(self):
        try:
            with open(self.log_path) as f:
                lines = [l.strip() for l in f if "|ERR|" in l or "|EMER|" in l]
            return lines[-1] if lines else "no error logged"
        except OSError:
            return "no log"

    def vsctl(self, *args, check=True):
        return self._run(["ovs-vsctl", "--db=unix:%s" % self.db_sock] + list(args), check=check)

    def appctl(self, *args):
        return self._run(["ovs-appctl"] + list(args)).stdout

    def add_vhost_ports(self, names):
        """A netdev bridge (default flow: NORMAL) with one dpdkvhostuser port per name;
        returns their socket paths (OVS listens, the front-end connects)."""
        self.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        for n in names:
            self.vsctl("add-port", "br0", n, "--", "set", "Interface", n, "type=dpdkvhostuser")
        socks = [os.path.join(self.run_dir, n) for n in names]
        for s in socks:
            self._wait_path(s, "vhost-user socket %s" % s)
        return socks

    def pmd_clear(self):
        # The PMD thread clears its own counters on its next iteration, not inside the
        # appctl call: wait until they read back reset, so the window's first reading is
        # not the old total.
        before = self.pmd_cycles()[1]
        self.appctl("dpif-netdev/pmd-stats-clear")
        deadline = time.time() + 2
        while before and self.pmd_cycles()[1] >= before and time.time() < deadline:
            time.sleep(0.01)

    def pmd_cycles(self):
        """(processing cycles, packets received) of the PMD thread(s) since the last clear:
        OVS's processing cycles count iterations that received packets, like ours."""
        out = self.appctl("dpif-netdev/pmd-stats-show")
        cycles = packets = 0
        # One section per thread; the "main thread" section (non-PMD ports) has no cycles.
        for section in re.split(r"\n(?=\S)", out):
            if section.startswith("pmd thread"):
                m = re.search(r"packets received:\s*(\d+)", section)
                c = re.search(r"processing cycles:\s*(\d+)", section)
                packets += int(m.group(1)) if m else 0
                cycles += int(c.group(1)) if c else 0
        return (cycles, packets)

    def stop(self):
        for proc in reversed(self.procs):
            stop_process(proc)
        for f in self.logs:
            f.close()
        shutil.rmtree(os.path.join("/var/run/dpdk", self.prefix), ignore_errors=True)


# --------------------------------------------------------------------------------------
# (b) vhost <-> kernel over a veth pair

class Veth:
    def __init__(self):
        self.ns = "%sns" % TAG
        self.host_if = "%sk0" % TAG
        self.ns_if = "%sk1" % TAG
        self.dropper = None
        run(["ip", "netns", "add", self.ns])
        run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
        run(["ip", "link", "set", self.ns_if, "netns", self.ns])
        run(["ip", "-n", self.ns, "link", "set", self.ns_if, "address", NS_MAC])
        run(["ip", "link", "set", self.host_if, "up"])
        run(["ip", "-n", self.ns, "link", "set", self.ns_if, "up"])
        run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        # The namespace end drops every frame at XDP (native), so vhost->kernel measures the
        # back-end's I/O cost, not the namespace's IP stack; rx_packets still counts them.
        # tools/xdpdrop.c holds the program through a bpf link: it goes when the process does.
        if XDPDROP:
            self.dropper = subprocess.Popen(["ip", "netns", "exec", self.ns, XDPDROP, self.ns_if, "native"],
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            CHILDREN.append(self.dropper)
            line = self.dropper.stdout.readline().strip()
            if not line.startswith("attached"):
                raise RuntimeError("xdpdrop on %s: %s" % (self.ns_if, line or self.dropper.communicate()[0]))

    def ns_counter(self, name):
        out = run(["ip", "netns", "exec", self.ns, "cat", "/sys/class/net/%s/statistics/%s" % (self.ns_if, name)])
        return int(out.stdout.strip())

    def delete(self):
        if self.dropper:
            stop_process(self.dropper)
        run(["ip", "link", "del", self.host_if], check=False)
        run(["ip", "netns", "del", self.ns], check=False)


# The vhost<->kernel back-ends: ours and DPDK's, each through AF_PACKET and AF_XDP (native
# XDP on the veth's host end, queue 0). The af-packet pair keeps its old keys.
KERNEL_DIRECTIONS = ("vhost_to_kernel", "kernel_to_vhost")
KERNEL_FE_RING = int(os.environ.get("BENCH_KERNEL_FE_RING", "4096"))
KERNEL_BACKENDS = {
    "ours": {"type": "af-packet"},
    "dpdk": "net_af_packet0,iface=%s,qdisc_bypass=1",
    "ours-xdp": {"type": "af-xdp", "queue": 0, "mode": "native"},
    "dpdk-xdp": "net_af_xdp0,iface=%s,start_queue=0,queue_count=1",
}


def kernel_run(backend, veth, size, windows=None):
    """Both directions, one after the other, through one back-end (`windows` windows each)."""
    sock_dir = os.path.join(WORK, "vk-%s" % backend)
    shutil.rmtree(sock_dir, ignore_errors=True)
    os.makedirs(sock_dir)
    daemon = be = None
    result = {}
    # "baseline" and "baseline-xdp": ours, as another build (BENCH_BASELINE_DAEMON).
    baseline = backend.startswith("baseline")
    kernel_port = KERNEL_BACKENDS[backend.replace("baseline", "ours")]
    try:
        if backend.startswith("ours") or baseline:
            daemon = Daemon("vk-%s" % backend, [
                {"name": "vm0", "type": "vhost-user", "socket": {"path": "vm0.sock", "mode": "server"}, "queues": 1},
                dict(kernel_port, name="kern", interface=veth.host_if)], binary=BASELINE_DAEMON if baseline else None)
            sock = daemon.socket("vm0.sock")
            deadline = time.time() + 10
            while not os.path.exists(sock) and time.time() < deadline:
                time.sleep(0.05)
            cycles = daemon.cycles
        else:
            sock = os.path.join(sock_dir, "vh0.sock")
            be = Testpmd("bek%s" % backend[5:9], ["net_vhost0,iface=%s,queues=1" % sock, kernel_port % veth.host_if],
                         ["--forward-mode=io", "--record-core-cycles"], cpu=BE_CPU)
            cycles = be.fwd_cycles
        # vhost -> kernel: front-end txonly toward the namespace's MAC, counted there.
        # Rings of KERNEL_FE_RING entries: in kernel->vhost the front-end shares CPU 0 with the
        # generator (and the veth's softirq work), so it drains its receive ring only in its
        # time slices; a 256-entry ring then overflows between two slices and every back-end
        # drops most frames at the guest's full ring (the old 0.03-0.08 Mpps figures). Enough
        # mbufs for both full rings and txonly's bursts.
        fe = Testpmd("fek%s" % (backend[0] + backend[-1]),
                     ["net_virtio_user0,path=%s,queues=1,queue_size=%d,mac=%s" % (sock, KERNEL_FE_RING, MAC0)],
                     ["--forward-mode=txonly", "--burst=32", "--eth-peer=0,%s" % NS_MAC,
                      "--rxd=%d" % KERNEL_FE_RING, "--txd=%d" % KERNEL_FE_RING,
                      "--total-num-mbufs=%d" % (4 * KERNEL_FE_RING + 8192)], cpu=FE_CPU)
        try:
            fe.wait_link([0])
            fe.cmd("set txpkts %d" % size)
            if be:
                be.wait_link([0])
                be.cmd("start")
            fe.cmd("start")
            result["vhost_to_kernel"] = measure_windows({"mpps": lambda: veth.ns_counter("rx_packets")}, cycles, windows)
            fe.cmd("stop")
            # kernel -> vhost: rawgen in the namespace toward the front-end's MAC, counted at
            # the front-end (rxonly).
            fe.cmd("set fwd rxonly")
            fe.cmd("start")
            duration = WARMUP_SECONDS + WINDOWS * (WINDOW_SECONDS + 1) + 10
            gen = subprocess.Popen(["ip", "netns", "exec", veth.ns, "taskset", "-c", str(FE_CPU), RAWGEN, veth.ns_if,
                                    MAC0, NS_MAC, str(size), str(duration)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            CHILDREN.append(gen)
            try:
                result["kernel_to_vhost"] = measure_windows({"mpps": lambda: fe.port_stats()[0]["rx"]}, cycles, windows)
            finally:
                gen.send_signal(signal.SIGTERM)
                try:
                    out, _ = gen.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    gen.kill()
                    out, _ = gen.communicate()
                result["kernel_to_vhost"]["generator"] = out.strip()
            fe.cmd("stop")
        finally:
            fe.quit()
        if be:
            be.cmd("stop")
        return result
    finally:
        if be:
            be.quit()
        if daemon:
            daemon.stop()


# --------------------------------------------------------------------------------------
# profile of our poll thread while it forwards 64-byte frames vhost <-> vhost

PROFILE_SECONDS = float(os.environ.get("BENCH_PROFILE_SECONDS", "10"))
RUNTIME_SYMBOLS = ["swift_beginAccess", "swift_endAccess", "swift_retain", "swift_release", "swift_allocObject",
                   "swift_deallocObject", "malloc", "free", "swift_dynamicCast", "swift_getGenericMetadata",
                   "swift::runtime::AccessSet::insert"]


def profile_run(size=64):
    if not shutil.which("perf"):
        return {"skipped": "perf not installed (apt-get install linux-perf)"}
    daemon = fe = None
    try:
        daemon = Daemon("profile", [
            {"name": "vm0", "type": "vhost-user", "socket": {"path": "vm0.sock", "mode": "server"}, "queues": 1},
            {"name": "vm1", "type": "vhost-user", "socket": {"path": "vm1.sock", "mode": "server"}, "queues": 1}])
        s0, s1 = daemon.socket("vm0.sock"), daemon.socket("vm1.sock")
        deadline = time.time() + 10
        while not (os.path.exists(s0) and os.path.exists(s1)) and time.time() < deadline:
            time.sleep(0.05)
        fe = frontend_two_ports(s0, s1, size, "fep", os.environ.get("BENCH_PROFILE_OPTIONS", ""))
        fe.cmd("start tx_first 16")
        time.sleep(WARMUP_SECONDS)
        tid = pmd_tid(daemon.proc.pid)
        data = os.path.join(WORK, "perf-pmd.data")
        # cpu-clock: this VM has no hardware PMU counters; -g: frame-pointer call graphs.
        rec = run(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g", "-t", str(tid), "-o", data,
                   "--", "sleep", str(PROFILE_SECONDS)], check=False)
        fe.cmd("stop")
        flat = run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio",
                    "--percent-limit", "0.3", "-g", "none"], check=False).stdout
        callers = run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol", "--stdio", "-G",
                       "-S", ",".join(RUNTIME_SYMBOLS)], check=False).stdout
        top = []
        for line in flat.splitlines():
            m = re.match(r"\s+([\d.]+)%\s+\[(.)\]\s+(\S+)", line)
            if m:
                top.append({"percent": float(m.group(1)), "kernel": m.group(2) == "k",
                            "symbol": demangle(m.group(3))})
        runtime = {}
        for entry in top:
            for name in RUNTIME_SYMBOLS:
                if entry["symbol"].startswith(name):
                    runtime[name] = runtime.get(name, 0.0) + entry["percent"]
        path = os.path.join(RESULTS_DIR, "profile-pmd.txt")
        with open(path, "w") as f:
            f.write("# perf record -e cpu-clock -g -t <pmd0> while forwarding %d-byte frames vhost<->vhost (%s s) %s\n"
                    % (size, PROFILE_SECONDS, os.environ.get("BENCH_PROFILE_OPTIONS", "")))
            f.write(rec.stdout)
            f.write("\n# flat profile (self time)\n")
            for entry in top:
                f.write("%7.2f%%  %s%s\n" % (entry["percent"], "[k] " if entry["kernel"] else "", entry["symbol"]))
            f.write("\n# callers of Swift runtime entry points (exclusivity, ARC, allocation, casts)\n")
            f.write(callers)
        return {"top": top[:25], "runtime_percent": runtime, "report": path}
    finally:
        if fe:
            fe.quit()
        if daemon:
            daemon.stop()


def demangle(symbol):
    if symbol.startswith("$s") and shutil.which("swift-demangle"):
        out = run(["swift-demangle", "--simplified", "--compact", symbol], check=False).stdout.strip()
        return out or symbol
    return symbol


# --------------------------------------------------------------------------------------
# (d) idle cost

def proc_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def pmd_tid(pid):
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if f.read().strip().startswith("pmd"):
                    return int(tid)
        except OSError:
            pass
    return None


def task_ticks(pid, tid):
    with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def idle_run(busy_poll, count=16):
    mode = "busy" if busy_poll else "adaptive"
    ports = [{"name": "vm%d" % i, "type": "vhost-user", "socket": {"path": "vm%d.sock" % i, "mode": "server"}, "queues": 1}
             for i in range(count)]
    daemon = Daemon("idle-%s" % mode, ports, busy_poll=busy_poll)
    fe = None
    try:
        socks = [daemon.socket("vm%d.sock" % i) for i in range(count)]
        deadline = time.time() + 10
        while not all(os.path.exists(s) for s in socks) and time.time() < deadline:
            time.sleep(0.05)
        fe = Testpmd("idle%s" % mode[0], ["net_virtio_user%d,path=%s,queues=1,mac=02:00:00:00:01:%02x" % (i, s, i)
                                          for i, s in enumerate(socks)],
                     ["--forward-mode=rxonly"], cpu=FE_CPU, mbufs=65536)
        connected = fe.wait_link(list(range(count)))
        time.sleep(2)
        hz = os.sysconf("SC_CLK_TCK")
        pid = daemon.proc.pid
        tid = pmd_tid(pid)
        a0, p0, t0 = proc_ticks(pid), task_ticks(pid, tid) if tid else 0, time.time()
        time.sleep(IDLE_SECONDS)
        a1, p1, t1 = proc_ticks(pid), task_ticks(pid, tid) if tid else 0, time.time()
        stats = daemon.stats()["poll_threads"][0]
        return {"front_ends": count, "links_up": connected,
                "cpu_percent": 100.0 * (a1 - a0) / hz / (t1 - t0),
                "pmd_cpu_percent": 100.0 * (p1 - p0) / hz / (t1 - t0) if tid else None,
                "sleeps": stats.get("sleeps")}
    finally:
        if fe:
            fe.quit()
        daemon.stop()


# --------------------------------------------------------------------------------------
# output

def fmt(v, digits=3):
    return "-" if v is None else ("%.*f" % (digits, v))


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    global OVS_REASON
    os.makedirs(LOG_DIR, exist_ok=True)
    OVS_REASON = ovs_unavailable() if "vhost" in ONLY else None
    os.makedirs(RESULTS_DIR, exist_ok=True)
    results = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": os.uname().nodename,
               "cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(),
               "settings": {"windows": WINDOWS, "window_seconds": WINDOW_SECONDS, "warmup_seconds": WARMUP_SECONDS,
                            "front_end_cpu": FE_CPU, "back_end_cpu": BE_CPU},
               "git": run(["git", "-C", HERE, "describe", "--always", "--dirty"], check=False).stdout.strip()}
    table = []

    if "vhost" in ONLY:
        results["vhost_vhost"] = {}
        for size in SIZES:
            log("vhost<->vhost %d B: %d rounds of one %.0f s window per back-end" % (size, WINDOWS, WINDOW_SECONDS))
            entry = interleaved_pair(size)
            results["vhost_vhost"][str(size)] = entry
            table += vhost_rows("vhost->vhost %dB" % size, entry)

    if "rings" in ONLY:
        results["ring_variants"] = {}
        for options in RING_VARIANTS:
            log("vhost<->vhost 64 B, front-end %s: %d rounds of one %.0f s window per back-end" % (options, WINDOWS, WINDOW_SECONDS))
            entry = interleaved_pair(64, options)
            results["ring_variants"][options] = entry
            table += vhost_rows("%s 64B" % options, entry)

    if "segments" in ONLY:
        log("vhost<->vhost 64 B, segments (ours only): untagged, access VLAN %d, trunk of VLAN %d: %d rounds of one %.0f s window each"
            % (SEGMENT_VLAN, SEGMENT_VLAN, WINDOWS, WINDOW_SECONDS))
        results["segments"] = {"64": segment_pair(64)}
        table += variant_rows("{name} 64B", results["segments"]["64"], SEGMENT_VARIANTS)

    if "multiqueue" in ONLY:
        log("vhost<->vhost 64 B, %d queue pairs per guest (ours only): 1 poll thread vs 2 (CPUs %s): %d rounds of one %.0f s window each"
            % (MQ_QUEUES, MQ_PMD_CPUS, WINDOWS, WINDOW_SECONDS))
        results["multiqueue"] = {"64": multiqueue_pair(64), "queues": MQ_QUEUES, "pmd_cpus": MQ_PMD_CPUS}
        table += variant_rows("mq%d 64B {name}" % MQ_QUEUES, results["multiqueue"]["64"], MQ_VARIANTS)

    if "kernel" in ONLY:
        veth = None
        results["vhost_kernel"] = {}
        try:
            veth = Veth()
            # Alternating one window per back-end and direction, round after round (as the
            # vhost rows): the host's drift hits every back-end alike.
            backends = list(KERNEL_BACKENDS) + (["baseline", "baseline-xdp"] if BASELINE_DAEMON else [])
            for round_number in range(WINDOWS):
                for backend in backends:
                    log("vhost<->kernel 64 B, round %d/%d, back-end %s" % (round_number + 1, WINDOWS, backend))
                    entry = results["vhost_kernel"].setdefault(backend, {})
                    try:
                        run_result = kernel_run(backend, veth, 64, windows=1)
                    except Exception as e:
                        log("  failed: %s" % e)
                        entry.setdefault("errors", []).append(str(e))
                        run_result = {}
                    for d in KERNEL_DIRECTIONS:
                        # A failed run keeps its place (None), so rounds stay paired.
                        window = (run_result.get(d, {}).get("windows") or [{"mpps": None, "cycles_per_packet": None}])[0]
                        entry.setdefault(d, {"windows": []})["windows"].append(window)
                        if "generator" in run_result.get(d, {}):
                            entry[d].setdefault("generator", []).append(run_result[d]["generator"])
            for entry in results["vhost_kernel"].values():
                for d in KERNEL_DIRECTIONS:
                    if d in entry:
                        entry[d]["median"] = {k: median([w.get(k) for w in entry[d]["windows"]]) for k in ("mpps", "cycles_per_packet")}
        except Exception as e:
            log("vhost<->kernel set-up failed: %s" % e)
            results["vhost_kernel"]["error"] = str(e)
        finally:
            if veth:
                veth.delete()
        vk = results["vhost_kernel"]
        # Ours against DPDK on each socket type, then our af-xdp against our af-packet (the
        # issue 21 target: at least 2x the Mpps, at most 1/3 of the cycles per packet).
        for d in KERNEL_DIRECTIONS:
            label = d.replace("_to_", "->")
            for name, ours, other in (("af-packet", "ours", "dpdk"), ("af-xdp", "ours-xdp", "dpdk-xdp"),
                                      ("xdp/packet", "ours-xdp", "ours")) + (
                    (("af-packet vs baseline build", "ours", "baseline"), ("af-xdp vs baseline build", "ours-xdp", "baseline-xdp"))
                    if BASELINE_DAEMON else ()):
                o = vk.get(ours, {}).get(d, {})
                p = vk.get(other, {}).get(d, {})
                for key, what in (("mpps", "Mpps"), ("cycles_per_packet", "busy cycles/pkt")):
                    # Medians of each back-end's windows; the ratio is the median of the per-round ratios.
                    pairs = zip(o.get("windows", []), p.get("windows", []))
                    table.append(("%s 64B %s %s" % (label, name, what), o.get("median", {}).get(key), p.get("median", {}).get(key),
                                  median([ratio(a.get(key), b.get(key)) for a, b in pairs]), None, None))

    if "idle" in ONLY:
        results["idle"] = {}
        for busy in (False, True):
            mode = "busy_poll" if busy else "adaptive"
            log("idle cost, 16 front-ends, %s" % mode)
            try:
                results["idle"][mode] = idle_run(busy)
            except Exception as e:
                log("  failed: %s" % e)
                results["idle"][mode] = {"error": str(e)}

    if "churn" in ONLY:
        log("port churn: 1000 creates + 1000 deletes over one keep-alive connection")
        try:
            results["churn"] = churn_run()
        except Exception as e:
            log("  failed: %s" % e)
            results["churn"] = {"error": str(e)}

    if "micro" in ONLY:
        if MICRO and os.path.exists(MICRO):
            log("microbenchmarks")
            out = run(["taskset", "-c", str(BE_CPU), MICRO, "--json"], check=False)
            try:
                results["micro"] = json.loads(out.stdout.strip().splitlines()[-1])
            except Exception:
                results["micro"] = {"error": out.stdout[-2000:]}
        else:
            results["micro"] = {"skipped": "microbenchmark binary not built"}

    if "profile" in ONLY or os.environ.get("BENCH_PROFILE") == "1":
        log("profile of the poll thread (perf, %.0f s)" % PROFILE_SECONDS)
        try:
            results["profile"] = profile_run()
        except Exception as e:
            log("  failed: %s" % e)
            results["profile"] = {"error": str(e)}

    results["loadavg_at_end"] = os.getloadavg()
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path = os.path.join(RESULTS_DIR, "latest.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)

    print()
    print("vhost-switchd vs DPDK and OVS-DPDK (medians of %d x %.0f s windows; front-end CPU %d, back-end CPU %d; load avg at start %.2f)"
          % (WINDOWS, WINDOW_SECONDS, FE_CPU, BE_CPU, results["loadavg_at_start"][0]))
    print("vhost<->vhost rows alternate the back-ends window by window; their ratios are medians of the per-round ratios")
    print("'cores near/far': only the rounds whose two windows saw the same cache-line round trip between the two CPUs")
    print("(tools/core_latency.c: near < 200 ns, far > 300 ns; the host moves the vCPUs and every back-end's cost follows)")
    if "vhost_kernel" in results:
        print("vhost<->kernel rows: the namespace end drops at XDP; 'af-packet'/'af-xdp' rows compare ours with DPDK's net_af_packet/"
              "net_af_xdp, 'xdp/packet' rows put our af-xdp in 'ours' and our af-packet in 'dpdk'")
        for backend, r in results["vhost_kernel"].items():
            if isinstance(r, dict) and "error" in r:
                print("vhost<->kernel %s: failed: %s" % (backend, r["error"]))
    if "segments" in results:
        print("access/trunk rows (segments): 'ours' is that variant, 'dpdk' column is ours untagged, the ratio variant/untagged")
    if "multiqueue" in results:
        print("mq rows (multiqueue, %d queue pairs per guest): 'ours' is 2 poll threads (CPUs %s), 'dpdk' column is ours with 1, the ratio 2/1"
              % (MQ_QUEUES, MQ_PMD_CPUS))
    print("%-44s %10s %10s %10s %10s %9s" % ("measure", "ours", "dpdk", "ours/dpdk", "ovs-dpdk", "ours/ovs"))
    for name, o, d, rd, v, rv in table:
        print("%-44s %10s %10s %10s %10s %9s" % (name, fmt(o), fmt(d), fmt(rd, 2), fmt(v), fmt(rv, 2)))
    for size, entry in results.get("vhost_vhost", {}).items():
        if "median" not in entry.get("ovs", {}):
            print("ovs-dpdk: not run: %s" % (entry["ovs"].get("not_run") or entry["ovs"].get("errors")))
            break
    for section in ("segments", "multiqueue"):
        for name, variant in results.get(section, {}).get("64", {}).items():
            if variant.get("errors"):
                print("%s %s: %d window(s) failed: %s" % (section, name, len(variant["errors"]), variant["errors"][-1]))
    if "churn" in results:
        c = results["churn"]
        if "error" in c:
            print("port churn: failed: %s" % c["error"])
        else:
            print("port churn: %d creates + %d deletes in %.2f s (%.2f + %.2f); per call %.3f ms at 100 ports, %.3f ms at %d (ratio %.2f, median of %d rounds)"
                  % (c["ports"], c["ports"], c["total_seconds"], c["create_seconds"], c["delete_seconds"],
                     c["ms_per_call_at_100"], c["ms_per_call_at_%d" % c["ports"]], c["ports"], c["per_call_ratio"], CHURN_ROUNDS))
            met = c["total_seconds"] < 2.0 and c["per_call_ratio"] is not None and c["per_call_ratio"] <= 1.2
            print("port churn: issue 19's bar (under 2 s in total; per call at %d ports within 20%% of 100 ports): %s"
                  % (c["ports"], "met" if met else "NOT met"))
    if "idle" in results:
        for mode, r in results["idle"].items():
            if "error" in r:
                print("idle, 16 front-ends, %-9s: failed: %s" % (mode, r["error"]))
            else:
                print("idle, 16 front-ends, %-9s: daemon %s%% CPU (poll thread %s%%), %s sleeps, links up: %s"
                      % (mode, fmt(r["cpu_percent"], 1), fmt(r["pmd_cpu_percent"], 1), r["sleeps"], r["links_up"]))
    if "micro" in results:
        m = results["micro"]
        if "benchmarks" in m:
            for b in m["benchmarks"]:
                print("micro %-45s %8.2f ns/%s (median of %d runs)" % (b["name"], b["median_ns"], b["unit"], b["runs"]))
        else:
            print("micro: %s" % (m.get("skipped") or m.get("error")))
    if "profile" in results:
        p = results["profile"]
        if "top" in p:
            print("profile of pmd0 (perf cpu-clock, self %): " + "; ".join("%.1f %s" % (e["percent"], e["symbol"][:60]) for e in p["top"][:8]))
            print("Swift runtime in the hot path: " + (", ".join("%s %.1f%%" % kv for kv in p["runtime_percent"].items()) or "none above 0.3%"))
            print("full profile: %s" % p["report"])
        else:
            print("profile: %s" % (p.get("skipped") or p.get("error")))
    print("results: %s" % path)


def cleanup(*_):
    for p in CHILDREN:
        try:
            stop_process(p, timeout=3)
        except Exception:
            pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        main()
    finally:
        cleanup()
