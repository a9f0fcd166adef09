#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the three fuzz targets (Fuzz/corpus/<target>/).
Run from anywhere; the files are small and committed. The byte formats are described at
the top of each target's main.swift."""
import json, os, struct

here = os.path.dirname(os.path.abspath(__file__))

def put(target, name, data):
    d = os.path.join(here, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# ---- vhost-user: ops 0 raw, 1 well-formed, 2 canned setup, 3 guest write, 4 bursts, 5 partial, 6 drain, 7 close
def raw(code, flags, payload, fds=b"\x00", declared=None):
    d = 0 if declared is None else (0x8000 | declared)
    return bytes([0, code, flags]) + struct.pack("<HH", d, len(payload)) + payload + fds

def wellformed(index, payload=b"", fds=b"\x00"):
    return bytes([1, index]) + payload + fds

def guest(offset, data):
    return bytes([3]) + struct.pack("<H", offset) + bytes([len(data)]) + data

def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)

canned = bytes([2, 0]) + struct.pack("<HH", 0, 0)
# ring 1 (guest TX): descriptor table at 0x4000, avail 0x5000, used 0x6000; a header + 60-byte frame at 0x8000
tx = guest(0x4000, desc(0x8000, 72, 0, 0)) + guest(0x5004, b"\x00\x00") + guest(0x5002, b"\x01\x00")
rx = guest(0x0000, desc(0x9000, 2048, 2, 0)) + guest(0x1004, b"\x00\x00") + guest(0x1002, b"\x01\x00")
put("vhost-user", "ready-and-bursts", canned + tx + rx + b"\x04\x40\x00")
put("vhost-user", "ready-loop-chain", canned + guest(0x4000, desc(0x8000, 16, 1, 0)) + guest(0x5002, b"\x01\x00") + b"\x04\x00\x00")
put("vhost-user", "ready-indirect", canned + guest(0x4000, desc(0xa000, 32, 4, 0)) + guest(0xa000, desc(0x8000, 12, 1, 1) + desc(0x8100, 60, 0, 0)) + guest(0x5002, b"\x01\x00") + b"\x04\x00\x00")
put("vhost-user", "ready-avail-runaway", canned + guest(0x5002, b"\xff\x7f") + b"\x04\x00\x00")
put("vhost-user", "get-features", raw(1, 1, b""))
put("vhost-user", "too-many-fds", raw(5, 1, struct.pack("<II", 9, 0) + b"\x00" * 32 * 8, bytes([9] + [1] * 9)))
put("vhost-user", "bad-version", raw(1, 2, b""))
put("vhost-user", "size-mismatch", raw(8, 1, b"\x00" * 8, declared=4000))
put("vhost-user", "partial-header", bytes([5, 7, 1, 0]))
put("vhost-user", "kick-junk-index", wellformed(11, struct.pack("<Q", 0xdead0001)))
put("vhost-user", "mem-table-short-file", canned + wellformed(4, b"\x01", b"") + bytes([0]) * 0 +
    bytes([1, 4, 1]) + struct.pack("<II", 1, 0) + struct.pack("<QQQQ", 0, 1 << 20, 0x1000, 0) + bytes([1, 2, 1]))
put("vhost-user", "replace-mem-while-ready", canned + tx + bytes([1, 4, 1]) + struct.pack("<II", 1, 0) +
    struct.pack("<QQQQ", 0, 0x10000, 0x7f0000000000, 0) + bytes([1, 1]) + b"\x04\x00\x00")
put("vhost-user", "disconnect-mid", canned + bytes([5, 5, 9, 0]) + b"\x07")

# ---- virtqueue: see FuzzVirtqueue/main.swift
def vq(features, size_log2, regions_sel, ops, memory):
    return struct.pack("<QBBH", features, size_log2, regions_sel, 0) + bytes(ops) + b"\xff" + memory

mem = bytearray(0x3000)
# descriptor table at 0, avail at 0x1000 (size 8), used at 0x2000
def setdesc(m, i, addr, length, flags, nxt):
    m[i*16:(i+1)*16] = desc(addr, length, flags, nxt)
setdesc(mem, 0, 0x2800, 80, 0, 0)
mem[0x1002:0x1004] = b"\x01\x00"
put("virtqueue", "one-tx", vq((1 << 32) | (1 << 28), 3, 0, [0, 1], bytes(mem)))
mem2 = bytearray(mem)
setdesc(mem2, 0, 0x2800, 12, 1, 1); setdesc(mem2, 1, 0x2900, 1, 1, 2); setdesc(mem2, 2, 0x2a00, 100, 0, 0)
put("virtqueue", "split-header", vq((1 << 32) | (1 << 15), 3, 0, [0, 1, 0], bytes(mem2)))
mem3 = bytearray(mem)
setdesc(mem3, 0, 0x2800, 2048, 2, 0); setdesc(mem3, 1, 0x2000 - 0x10, 0x20, 2, 0)
mem3[0x1002:0x1004] = b"\x02\x00"; mem3[0x1006:0x1008] = b"\x01\x00"
put("virtqueue", "rx-mergeable", vq((1 << 32) | (1 << 15) | (1 << 29), 3, 0, [1, 1, 1], bytes(mem3)))
mem4 = bytearray(mem)
setdesc(mem4, 0, 0x2400, 48, 4, 0)
mem4[0x2400:0x2430] = desc(0x2800, 10, 1, 1) + desc(0x2900, 70, 1, 2) + desc(0x2a00, 1, 4, 0)
put("virtqueue", "indirect-nested", vq((1 << 32) | (1 << 28), 3, 1, [0, 1], bytes(mem4)))
mem5 = bytearray(mem)
setdesc(mem5, 0, 0x2800, 16, 1, 1); setdesc(mem5, 1, 0x2810, 16, 1, 0)
put("virtqueue", "loop", vq(1 << 32, 3, 2, [0, 1], bytes(mem5)))

# ---- json: first byte picks the consumer (see FuzzJSON/main.swift), the rest is the body
port = {"name": "vm1", "type": "vhost-user", "socket": {"path": "vm1.sock", "mode": "server", "permissions": "0660"},
        "queues": 2, "mtu": 1500, "mac": "02:00:00:00:00:01",
        "features": {"mask": "0x140000000", "enable": ["mrg_rxbuf"], "disable": ["event_idx"]}}
put("json", "port-vhost-user", b"\x00" + json.dumps(port).encode())
put("json", "port-af-packet", b"\x00" + json.dumps({"name": "eth", "type": "af-packet", "interface": "veth0"}).encode())
put("json", "config-file", b"\x01" + json.dumps({"ports": [port]}).encode())
put("json", "state-file", b"\x02" + json.dumps({"version": 1, "ports": [port, port]}).encode())
put("json", "features-put", b"\x03" + json.dumps({"mask": "0x1"}).encode())
put("json", "features-patch", b"\x04" + json.dumps({"enable": ["mq"], "disable": ["mtu", "bogus"]}).encode())
put("json", "post-port", b"\x05" + json.dumps({"name": "fz1", "type": "vhost-user", "socket": {"path": "fz1.sock"}}).encode())
put("json", "deep", b"\x00" + b"[" * 40 + b"]" * 40)
put("json", "dup-keys", b"\x00" + b'{"name":"a","name":"b"}')
put("json", "big-int", b"\x00" + b'{"name":"a","type":"vhost-user","queues":99999999999999999999999,"socket":{"path":"x"}}')
put("json", "unicode", b"\x00" + '{"name":"\\u0000\\ud800x","type":"af-packet","interface":"é"}'.encode())
