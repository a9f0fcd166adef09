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

# ---- virtqueue: see FuzzVirtqueue/main.swift (header: features u64, ring size u16, layout u8,
# start index u16; ops up to 0xff; the guest memory image)
SPLIT_SMALL = lambda log2: log2                # 1 << (r % 9)
SPLIT_LARGE = lambda log2: 0x8000 | log2       # 1 << (r % 16), up to 32768
PACKED_SMALL = lambda n: n - 1                 # 1 + (r & 0xff)
PACKED_LARGE = lambda n: 0x8000 | (n - 1)      # 1 + (r & 0x7fff), up to 32768
F_VERSION_1, F_PACKED, F_IN_ORDER = 1 << 32, 1 << 34, 1 << 35
F_MRG_RXBUF, F_INDIRECT, F_EVENT_IDX = 1 << 15, 1 << 28, 1 << 29
NEXT, WRITE, INDIRECT, AVAIL, USED = 1, 2, 4, 1 << 7, 1 << 15

def vq(features, ring_size, regions_sel, ops, memory, start=0):
    return struct.pack("<QHBH", features, ring_size, regions_sel, start) + bytes(ops) + b"\xff" + bytes(memory)

# op bytes (kind | argument << 3) and their operands
DEQ, ENQ = 0, 1
def post(n): return bytes([2]) + struct.pack("<H", n)
def write_desc(slot, data, fields=0, xor=False):  # fields: 1 address, 2 length, 4 bytes 12-13, 8 bytes 14-15
    return bytes([4 | (fields | (16 if xor else 0)) << 3]) + struct.pack("<H", slot) + data
def write_avail(which, index, value, xor=False):  # split: 0 ring[i], 1 idx, 2 flags, 3 used_event; packed: 0 flags of slot i, 1 off_wrap, 2 event flags, 3 id of slot i
    return bytes([5 | (which | (4 if xor else 0)) << 3]) + struct.pack("<HH", index, value)
def defer(page): return bytes([6]) + struct.pack("<H", page)
def deq(n): return bytes([7 | (n - 1) << 3])
def pdesc(addr, length, bid, flags):  # packed: addr u64, len u32, id u16, flags u16
    return struct.pack("<QIHH", addr, length, bid, flags)

mem = bytearray(0x3000)
# descriptor table at 0, avail at 0x1000 (size 8), used at 0x2000
def setdesc(m, i, addr, length, flags, nxt):
    m[i*16:(i+1)*16] = desc(addr, length, flags, nxt)
setdesc(mem, 0, 0x2800, 80, 0, 0)
mem[0x1002:0x1004] = b"\x01\x00"
put("virtqueue", "one-tx", vq((1 << 32) | (1 << 28), SPLIT_SMALL(3), 0, [0, 1], mem))
mem2 = bytearray(mem)
setdesc(mem2, 0, 0x2800, 12, 1, 1); setdesc(mem2, 1, 0x2900, 1, 1, 2); setdesc(mem2, 2, 0x2a00, 100, 0, 0)
put("virtqueue", "split-header", vq((1 << 32) | (1 << 15), SPLIT_SMALL(3), 0, [0, 1, 0], mem2))
mem3 = bytearray(mem)
setdesc(mem3, 0, 0x2800, 2048, 2, 0); setdesc(mem3, 1, 0x2000 - 0x10, 0x20, 2, 0)
mem3[0x1002:0x1004] = b"\x02\x00"; mem3[0x1006:0x1008] = b"\x01\x00"
put("virtqueue", "rx-mergeable", vq((1 << 32) | (1 << 15) | (1 << 29), SPLIT_SMALL(3), 0, [1, 1, 1], mem3))
mem4 = bytearray(mem)
setdesc(mem4, 0, 0x2400, 48, 4, 0)
mem4[0x2400:0x2430] = desc(0x2800, 10, 1, 1) + desc(0x2900, 70, 1, 2) + desc(0x2a00, 1, 4, 0)
put("virtqueue", "indirect-nested", vq((1 << 32) | (1 << 28), SPLIT_SMALL(3), 1, [0, 1], mem4))
mem5 = bytearray(mem)
setdesc(mem5, 0, 0x2800, 16, 1, 1); setdesc(mem5, 1, 0x2810, 16, 1, 0)
put("virtqueue", "loop", vq(1 << 32, SPLIT_SMALL(3), 2, [0, 1], mem5))

# The packed seeds of the first packed-ring commit (16 KiB images, given as their non-zero runs).
def sparse(runs, size=0x4000):
    m = bytearray(size)
    for off, hexdata in runs:
        data = bytes.fromhex(hexdata)
        m[off:off + len(data)] = data
    return m
frame60 = "000000000000000000000000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b0000000000000000"
put("virtqueue", "packed-endless-chain", vq(F_VERSION_1 | F_PACKED, PACKED_SMALL(5), 0, [DEQ] + list(post(0)) + [DEQ],
    sparse([(0x0, "00300000000000001000000000008100" * 5)]), start=0x8003))
put("virtqueue", "packed-tx-rx", vq(F_VERSION_1 | F_PACKED | F_INDIRECT | F_MRG_RXBUF, PACKED_SMALL(16), 0, [DEQ, ENQ, DEQ],
    sparse([(0x0, "00300000000000004800000000008000" "00310000000000000c00000001008100" "00320000000000003c00000001008000"
                  "00330000000000002000000002008400" "00340000000000003200000003008200" "00350000000000000008000004008200"),
            (0x3000, frame60),
            (0x3200, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b00000000"),
            (0x3300, "00310000000000000c0000000000000000320000000000003c00000000000000")]), start=0x8000))
put("virtqueue", "packed-wrap", vq(F_VERSION_1 | F_PACKED, PACKED_SMALL(8), 0, [DEQ, DEQ, ENQ, 3],
    sparse([(0x0, "00310000000000000008000000008200"), (0x70, "00300000000000004800000007000080"), (0x3000, frame60)]), start=0x7))

# The guest rewrites between passes (op 4/5) and in the middle of one (op 6 defers the write to
# the switch's first touch of a page).
flip = bytearray(mem)
setdesc(flip, 0, 0x2800, 12, NEXT, 1); setdesc(flip, 1, 0x2900, 80, 0, 0)
setdesc(flip, 2, 0x2a00, 80, 0, 0)
flip[0x1002:0x1004] = b"\x02\x00"; flip[0x1004:0x1008] = b"\x00\x00\x02\x00"
ops = [DEQ] + list(write_desc(0, desc(0, 0, NEXT, 0), fields=8, xor=True)) + list(post(2)) + [DEQ] \
    + list(write_avail(0, 5, 1)) + list(post(1)) + [DEQ]
put("virtqueue", "split-flip-next", vq(F_VERSION_1, SPLIT_SMALL(3), 0, ops, flip))
# the next chain's head is rewritten after the prefetch pass read it, when the first frame is copied
ops = list(defer(2)) + list(write_avail(0, 1, 0)) + [DEQ] + list(defer(2)) + list(write_desc(2, desc(0x2800, 12, NEXT, 2), fields=8)) + list(post(2)) + [DEQ]
put("virtqueue", "split-mid-burst-head", vq(F_VERSION_1, SPLIT_SMALL(3), 0, ops, flip))
# packed without IN_ORDER: an id flipped while the chain is walked (two used descriptors)
pk = bytearray(0x3000)
pk[16:32] = pdesc(0x2800, 80, 1, AVAIL)
pk[0:16] = pdesc(0x2900, 80, 0, USED | NEXT)
ops = list(defer(2)) + list(write_avail(3, 1, 0)) + [DEQ, DEQ, ENQ]
put("virtqueue", "packed-mid-burst-id", vq(F_VERSION_1 | F_PACKED, PACKED_SMALL(2), 0, ops, pk, start=0x8001))

# Large rings: the image's first 4 KiB (256 descriptors) repeat over the whole table, its second
# 4 KiB over the avail ring; buffers from guest-physical 0xe0000 (image offset 0x3000).
big = bytearray(0x3000 + 0x800)
for i in range(256):
    setdesc(big, i, 0xe0000 + 16 * (i % 64), 80, 0, 0)
big[0x1002:0x1004] = struct.pack("<H", 300)
for i in range(2046):  # avail ring entries (tiled: 2048 u16 per 4 KiB, the first two are flags, idx)
    big[0x1004 + 2 * i:0x1006 + 2 * i] = struct.pack("<H", (7 * i) % 4096)
put("virtqueue", "split-4096", vq(F_VERSION_1, SPLIT_LARGE(12), 0, [DEQ, DEQ, ENQ] + list(post(4000)) + [DEQ, 3 | 8, ENQ], big, start=0))
put("virtqueue", "split-32768-two-regions", vq(F_VERSION_1 | F_MRG_RXBUF | F_EVENT_IDX, SPLIT_LARGE(15), 1,
                                               [DEQ] + list(post(32000)) + [DEQ, ENQ, ENQ], big, start=0xfff0))
pbig = bytearray(0x3000 + 0x800)
for i in range(256):
    pbig[16 * i:16 * i + 16] = pdesc(0xe0000 + 16 * (i % 64), 80, i, AVAIL)
put("virtqueue", "packed-32768", vq(F_VERSION_1 | F_PACKED, PACKED_LARGE(32768), 0, [DEQ, DEQ, ENQ, DEQ], pbig, start=0x8000 | 32000))
put("virtqueue", "packed-1000-inorder-hole", vq(F_VERSION_1 | F_PACKED | F_IN_ORDER, PACKED_LARGE(1000), 2,
                                                 [DEQ] + list(write_avail(0, 3, 0)) + [DEQ, ENQ], pbig, start=0x8000 | 990))
# chains of NEXT flags over a whole 4096-entry packed ring; when the walk reaches slot 2048 (page 8)
# the guest clears NEXT at slot 3000, so the walk ends there, not at the ring-length limit
pchain = bytearray(pbig)
for i in range(256):
    pchain[16 * i:16 * i + 16] = pdesc(0xe0000, 16, i, AVAIL | NEXT)
put("virtqueue", "packed-4096-long-chain", vq(F_VERSION_1 | F_PACKED, PACKED_LARGE(4096), 0,
                                               list(defer(8)) + list(write_avail(0, 3000, AVAIL)) + [DEQ, DEQ], pchain, start=0x8000))

# Regressions of issue 16 (each found the bug before its fix).
# Packed + IN_ORDER: buffer 1 (slot 1) is taken, then a chain from slot 0 wraps back over slot 1,
# whose id the guest changed to 0 while the switch copied buffer 1's frame (page 2): the batch spans
# 3 slots of a 2-slot ring and the used position lands at slot 2, past the ring.
inorder = bytearray(pk)
ops = list(defer(2)) + list(write_avail(3, 1, 0)) + [DEQ, DEQ]
put("virtqueue", "packed-inorder-wrap-flip", vq(F_VERSION_1 | F_PACKED | F_IN_ORDER, PACKED_SMALL(2), 0, ops, inorder, start=0x8001))
# Work per burst: a 32768-entry split ring, every entry posted, every chain a loop of NEXT hops
# (a 256-descriptor cycle repeated over the table). Each chain walks 32768 hops before it is
# refused and malformed chains did not end the burst: one burst was about 2^30 hops (over 30 s
# in the fuzz build, a libFuzzer timeout); now the burst ends at the first invalid chain.
loops = bytearray(0x3000)
for i in range(256):
    setdesc(loops, i, 0xe0000, 16, NEXT, (i + 1) % 256)
loops[0x1002:0x1004] = struct.pack("<H", 32768)
for i in range(2046):
    loops[0x1004 + 2 * i:0x1006 + 2 * i] = struct.pack("<H", (13 * i) % 32768)
put("virtqueue", "split-32768-loop-every-entry", vq(F_VERSION_1, SPLIT_LARGE(15), 0, [DEQ], loops))

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
