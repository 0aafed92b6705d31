"""Hostile connections to a TCP port, for the soak (tests/soak/soak.py).

open_garbage(port, kind, rng) opens one connection of `kind` and sends what
that kind sends; the caller holds it for a while and closes it. Kinds:

  idle          connects and never sends a byte
  random        a few hundred random bytes
  h2_partial    the first half of the HTTP/2 client preface, then silence
  h2_garbage    the full HTTP/2 preface, then random bytes as frames
  h2_settings   the preface and an empty SETTINGS frame, then silence (a
                well-formed client that never opens a stream)
  tls_hello     the start of a TLS ClientHello record, then silence
  http1         an HTTP/1.1 request line and headers, then silence

Every connect and send has a 2 s timeout; a peer that refuses or resets is
not an error (returns None).
"""
import socket

KINDS = ("idle", "random", "h2_partial", "h2_garbage", "h2_settings", "tls_hello", "http1")

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
# TLS record header (handshake, TLS 1.0 record version, length 512) and the
# start of a ClientHello (type 1, length 508, version 3.3): the server waits
# for the remaining bytes.
_TLS_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32


def _payload(kind, rng):
    if kind == "idle":
        return b""
    if kind == "random":
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 600)))
    if kind == "h2_partial":
        return _H2_PREFACE[: rng.randint(1, len(_H2_PREFACE) - 1)]
    if kind == "h2_garbage":
        return _H2_PREFACE + bytes(rng.getrandbits(8) for _ in range(rng.randint(9, 300)))
    if kind == "h2_settings":
        return _H2_PREFACE + _H2_EMPTY_SETTINGS
    if kind == "tls_hello":
        return _TLS_HELLO_START
    if kind == "http1":
        return b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    raise ValueError(f"kind: unknown garbage connection kind {kind!r}")


def open_garbage(port, kind, rng):
    """A connected socket that has sent `kind`'s bytes, or None if the
    connect or send failed."""
    data = _payload(kind, rng)
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
        if data:
            s.sendall(data)
    except OSError:
        s.close()
        return None
    return s
