"""MicroPython's ``usocket`` on CPython: a stream socket with ``read``/``write``.

MicroPython's ``read(n)`` blocks until n bytes arrive (or returns None on a non-blocking socket
with nothing to read); ``write(buf, n)`` writes the first n bytes; strings are written as UTF-8.
"""

import socket as _socket

getaddrinfo = _socket.getaddrinfo


class socket:  # MicroPython's name
    def __init__(self, *args):
        self._sock = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        self._blocking = True

    def connect(self, address):
        self._sock.connect(address)

    def write(self, buf, n=None):
        data = buf.encode() if isinstance(buf, str) else bytes(buf)
        if n is not None:
            data = data[:n]
        self._sock.sendall(data)
        return len(data)

    def read(self, n):
        chunks = b""
        while len(chunks) < n:
            try:
                chunk = self._sock.recv(n - len(chunks))
            except BlockingIOError:
                if not chunks:
                    return None
                self._sock.setblocking(True)
                continue
            if not chunk:
                break
            chunks += chunk
        if not self._blocking:
            self._sock.setblocking(False)
        return chunks

    def setblocking(self, flag):
        self._blocking = flag
        self._sock.setblocking(flag)

    def close(self):
        self._sock.close()
