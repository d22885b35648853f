"""Plays the Teams side with libsrtp (Debian's python3-pylibsrtp), for the interop test.

Protocol on stdin/stdout: prints its UDP port; on "send A B" sends SRTP packets A..B-1 to the
relay (sequence numbers from 65000, so the rollover counter increments) and prints "sent"; on
"recv A B" receives packets A..B-1 from the relay, decrypts them with libsrtp, checks each
against the expected plain packet and prints "ok B" (or "bad <reason>"). The test moves one
chunk at a time, so no socket buffer overflows however slowly a busy machine runs us."""
import socket
import struct
import sys

from pylibsrtp import Policy, Session

relay_port = int(sys.argv[1])
teams_key = bytes.fromhex(sys.argv[2])
our_key = bytes.fromhex(sys.argv[3])
profile = Policy.SRTP_PROFILE_AES128_CM_SHA1_80
tx = Session(policy=Policy(key=teams_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile))
rx = Session(policy=Policy(key=our_key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile))


def rtp(n, ssrc):
    seq = (65000 + n) & 0xFFFF
    payload = bytes(((i ^ n) & 0xFF) for i in range(160))
    return struct.pack("!BBHII", 0x80, 0, seq, (n * 160) & 0xFFFFFFFF, ssrc) + payload


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)

for line in sys.stdin:
    cmd, first, end = line.split()
    first, end = int(first), int(end)
    if cmd == "send":
        for n in range(first, end):
            sock.sendto(tx.protect(rtp(n, 0xAAAA)), ("127.0.0.1", relay_port))
        print("sent", flush=True)
    elif cmd == "recv":
        sock.settimeout(5)
        for n in range(first, end):
            data, _ = sock.recvfrom(2048)
            try:
                plain = rx.unprotect(data)
            except Exception as e:  # libsrtp rejected our packet
                print(f"bad packet {n}: {e}", flush=True)
                sys.exit(1)
            if plain != rtp(n, 0xBBBB):
                print(f"bad packet {n}: content differs", flush=True)
                sys.exit(1)
        print(f"ok {end}", flush=True)
