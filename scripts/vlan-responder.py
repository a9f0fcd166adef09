#!/usr/bin/env python3
"""An 802.1Q peer for the VLAN tests, without VLAN devices (this kernel has no CONFIG_VLAN_8021Q).

  vlan-responder.py serve --iface IF --mac MAC --address VLAN=IPV4 [--address VLAN=IPV4 ...]
      Answers ARP requests and ICMP echo requests for each IPV4 only on its VLAN, with that
      VLAN's tag. Prints one line per received frame ("RX vlan=10 src=... dst=... type=0x0806";
      vlan=none when untagged) and per answer ("TX vlan=10 arp-reply|echo-reply ..."), and
      "READY" once the socket is bound. Runs until killed.
  vlan-responder.py send --iface IF --mac MAC --vlan VLAN --count N --target IPV4 --sender IPV4 [--length BYTES]
      Sends N broadcast ARP requests for TARGET tagged with VLAN (0: untagged), padded to
      BYTES (default 60, the minimum without the CRC; the tag counts), then exits.

On AF_PACKET receive the kernel moves the tag out of the frame into PACKET_AUXDATA
(tpacket_auxdata.tp_vlan_tci, valid when TP_STATUS_VLAN_VALID is set), so the VLAN is read
from there; a tag still in the frame (no offload on the path) is read from the frame.
"""
import argparse
import socket
import struct
import sys

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
AUXDATA = struct.Struct("=IIIHHHH")  # tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid
BROADCAST = b"\xff" * 6


def mac_bytes(text):
    return bytes(int(part, 16) for part in text.split(":"))


def mac_text(raw):
    return ":".join("%02x" % b for b in raw)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ethernet(dst, src, vlan, ethertype, payload, length=60):
    """A frame tagged with `vlan` (untagged when 0), padded to `length` bytes."""
    tag = struct.pack("!HH", ETH_P_8021Q, vlan & 0x0FFF) if vlan else b""
    frame = dst + src + tag + struct.pack("!H", ethertype) + payload
    return frame + b"\0" * max(0, length - len(frame))


def arp(op, sender_mac, sender_ip, target_mac, target_ip):
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, op, sender_mac, sender_ip, target_mac, target_ip)


def open_socket(iface):
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.bind((iface, 0))
    return sock


def receive(sock):
    """(vlan or None, frame without a tag) of the next frame from the wire; None for our own."""
    data, ancillary, _, address = sock.recvmsg(65536, socket.CMSG_SPACE(AUXDATA.size))
    if address[2] == PACKET_OUTGOING:
        return None
    vlan = None
    for level, kind, payload in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(payload) >= AUXDATA.size:
            status, _, _, _, _, tci, _ = AUXDATA.unpack(payload[:AUXDATA.size])
            if status & TP_STATUS_VLAN_VALID:
                vlan = tci & 0x0FFF
    if vlan is None and len(data) >= 18 and struct.unpack("!H", data[12:14])[0] == ETH_P_8021Q:
        vlan = struct.unpack("!H", data[14:16])[0] & 0x0FFF
        data = data[:12] + data[16:]
    return vlan, data


def answer(frame, vlan, mac, addresses):
    """The reply to `frame` (untagged bytes) received on `vlan`, or None."""
    if vlan is None or vlan not in addresses or len(frame) < 14:
        return None, None
    our_ip = addresses[vlan]
    src = frame[6:12]
    ethertype = struct.unpack("!H", frame[12:14])[0]
    body = frame[14:]
    if ethertype == ETH_P_ARP and len(body) >= 28:
        _, _, _, _, op, sender_mac, sender_ip, _, target_ip = struct.unpack("!HHBBH6s4s6s4s", body[:28])
        if op == 1 and target_ip == our_ip:
            return ethernet(src, mac, vlan, ETH_P_ARP, arp(2, mac, our_ip, sender_mac, sender_ip)), "arp-reply"
    if ethertype == ETH_P_IP and len(body) >= 20:
        header_length = (body[0] & 0x0F) * 4
        total_length = struct.unpack("!H", body[2:4])[0]
        if body[9] == 1 and body[16:20] == our_ip and len(body) >= total_length >= header_length + 8 and body[header_length] == 8:
            icmp = bytearray(body[header_length:total_length])
            icmp[0] = 0  # echo reply
            icmp[2:4] = b"\0\0"
            icmp[2:4] = struct.pack("!H", checksum(bytes(icmp)))
            ip = bytearray(body[:header_length])
            ip[8] = 64
            ip[12:16], ip[16:20] = body[16:20], body[12:16]
            ip[10:12] = b"\0\0"
            ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
            return ethernet(src, mac, vlan, ETH_P_IP, bytes(ip) + bytes(icmp)), "echo-reply"
    return None, None


def serve(args):
    mac = mac_bytes(args.mac)
    addresses = {}
    for item in args.address:
        vlan, ip = item.split("=")
        addresses[int(vlan)] = socket.inet_aton(ip)
    sock = open_socket(args.iface)
    print("READY", flush=True)
    while True:
        received = receive(sock)
        if received is None:
            continue
        vlan, frame = received
        if len(frame) < 14:
            continue
        print("RX vlan=%s src=%s dst=%s type=0x%04x" % (vlan if vlan is not None else "none", mac_text(frame[6:12]),
                                                        mac_text(frame[0:6]), struct.unpack("!H", frame[12:14])[0]), flush=True)
        reply, kind = answer(frame, vlan, mac, addresses)
        if reply:
            sock.send(reply)
            print("TX vlan=%d %s to %s" % (vlan, kind, mac_text(frame[6:12])), flush=True)


def send(args):
    mac = mac_bytes(args.mac)
    sock = open_socket(args.iface)
    request = arp(1, mac, socket.inet_aton(args.sender), b"\0" * 6, socket.inet_aton(args.target))
    frame = ethernet(BROADCAST, mac, args.vlan, ETH_P_ARP, request, args.length)
    for _ in range(args.count):
        sock.send(frame)
    print("SENT %d vlan=%d" % (args.count, args.vlan), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve")
    serve_parser.add_argument("--iface", required=True)
    serve_parser.add_argument("--mac", required=True)
    serve_parser.add_argument("--address", action="append", required=True, help="VLAN=IPV4")
    send_parser = commands.add_parser("send")
    send_parser.add_argument("--iface", required=True)
    send_parser.add_argument("--mac", required=True)
    send_parser.add_argument("--vlan", type=int, required=True)
    send_parser.add_argument("--count", type=int, default=1)
    send_parser.add_argument("--target", required=True)
    send_parser.add_argument("--sender", required=True)
    send_parser.add_argument("--length", type=int, default=60)
    args = parser.parse_args()
    serve(args) if args.command == "serve" else send(args)


if __name__ == "__main__":
    sys.exit(main())
