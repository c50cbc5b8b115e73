"""A TCP proxy in front of a broker's PROXIED listener (kafka/start.sh --proxied), to cut one
client off from the broker on purpose: after `hold()`, what the client sends still reaches the
broker, but nothing the broker answers reaches the client. A service instance behind it then
has its events stored and never learns it, as one whose network failed at the worst moment."""

from __future__ import annotations

import socket
import threading

CHUNK = 65536


class Proxy:
    """Listens on `listen` ("host:port") and forwards each connection to `upstream`."""

    def __init__(self, listen: str, upstream: str):
        host, port = listen.rsplit(":", 1)
        self.upstream = upstream.rsplit(":", 1)
        self.server = socket.create_server((host, int(port)))
        self.holding = threading.Event()
        self.lock = threading.Lock()
        self.held = 0  # bytes from the broker kept from the client since hold()
        self.sockets: list[socket.socket] = []
        self.closed = False

    def start(self) -> "Proxy":
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()
        return self

    def hold(self):
        """From now on the broker's answers are read and dropped, never forwarded."""
        self.holding.set()

    def held_bytes(self) -> int:
        with self.lock:
            return self.held

    def stop(self):
        """Closes the listener and every connection."""
        with self.lock:
            self.closed = True
            sockets, self.sockets = self.sockets, []
        for sock in [self.server, *sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # stopped
            try:
                broker = socket.create_connection((self.upstream[0], int(self.upstream[1])))
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.closed:
                    client.close()
                    broker.close()
                    return
                self.sockets += [client, broker]
            for source, sink, answers in ((client, broker, False), (broker, client, True)):
                threading.Thread(target=self._pump, args=(source, sink, answers),
                                 daemon=True, name="proxy-pump").start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool):
        """Copies source to sink until either closes; `answers` (broker to client) stops
        forwarding once held."""
        try:
            while data := source.recv(CHUNK):
                if answers and self.holding.is_set():
                    with self.lock:
                        self.held += len(data)
                    continue
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
