"""The lifetime of a client's one ZeroMQ socket (Client, Monitor)."""


class SocketOwner:
    """Owns self.sock, registered with self.poller: close() releases it
    (once); usable as a context manager; closed when collected."""

    def close(self):
        if self.sock is not None:
            self.poller.unregister(self.sock)
            self.sock.close(linger=0)
            self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
