"""CURVE for a client's socket (Client, Monitor): the client's secret
certificate and the daemon's public key, as fasciactl takes them.

  cert        the client's secret certificate file (NAME.key_secret, as
              `fasciactl keygen` or zmq.auth.create_certificates writes it);
              default $FASCIA_CERT
  server_key  the daemon's public key: 40 characters of Z85, or the path of
              its public certificate file (server.key); default
              $FASCIA_SERVER_KEY.  A name that exists as a file is a file.

Both, or neither (plaintext); one alone is a ValueError naming the other.
"""
import errno
import os
import struct

import zmq
import zmq.auth
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

KEY_Z85_LEN = 40

# Unreachable's words when CURVE is on: a wrong server key and a daemon
# that is not there look the same (the handshake never completes).
NO_REPLY_WHY = "the daemon is down, or the server key is wrong"
# What its ZAP handler's "400" means: the daemon was reached, and said no.
REFUSED_WHY = "the daemon refused this client's certificate (it is not among its clients)"


def _given(value, env):
    if value is None:
        value = os.environ.get(env) or None
    return value


def _load(path, what):
    """zmq.auth.load_certificate(path), with OSError for a file that cannot
    be read and ValueError for one that is not a certificate.  As libczmq's
    zcert_load (fasciactl's), PATH_secret is read instead when it is there:
    the same keys, and the secret one too."""
    if os.path.isfile(path + "_secret"):
        path += "_secret"
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "%s: no such file" % what, path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "%s: a directory" % what, path)
    try:
        return zmq.auth.load_certificate(path)
    except (ValueError, UnicodeDecodeError, IndexError):
        raise ValueError("%s: %s is not a CURVE certificate" % (what, path)) from None


def _secret_keys(cert):
    public, secret = _load(cert, "cert")
    if not secret:
        raise ValueError("cert: %s is a public certificate; give the secret one "
                         "(NAME.key_secret)" % cert)
    try:
        ok = zmq.curve_public(secret) == public
    except (ValueError, zmq.ZMQError):
        ok = False
    if not ok:
        raise ValueError("cert: %s is not a CURVE secret certificate (its keys "
                         "do not belong together)" % cert)
    return public, secret


def _server_key(text):
    if os.path.exists(text):
        return _load(text, "server_key")[0]
    if len(text) == KEY_Z85_LEN:
        try:
            z85.decode(text)
            return text.encode()
        except (ValueError, KeyError, struct.error):
            pass
    elif text.endswith((".key", ".key_secret")):
        # not "has a slash": Z85 has one
        raise FileNotFoundError(errno.ENOENT, "server_key: no such file", text)
    raise ValueError("server_key: %r is neither the daemon's public key (40 "
                     "characters of Z85) nor its certificate file" % text)


def keys(cert=None, server_key=None):
    """(public, secret, server) Z85 bytes for the arguments (or the
    environment), or None for plaintext.  Raises ValueError (one without
    the other, a file that is no secret certificate, a bad key) or OSError
    (a file that cannot be read)."""
    cert = _given(cert, "FASCIA_CERT")
    server_key = _given(server_key, "FASCIA_SERVER_KEY")
    if cert is None and server_key is None:
        return None
    if server_key is None:
        raise ValueError("cert given without server_key (or $FASCIA_SERVER_KEY): "
                         "the daemon's public key")
    if cert is None:
        raise ValueError("server_key given without cert (or $FASCIA_CERT): this "
                         "client's secret certificate")
    if not zmq.has("curve"):
        raise ValueError("this libzmq was built without CURVE")
    server_key = os.fsdecode(server_key)
    public, secret = _secret_keys(os.fsdecode(cert))
    return public, secret, _server_key(server_key)


def apply(sock, k):
    """Make sock a CURVE client with keys k (from keys()); before connect."""
    if k is None:
        return
    public, secret, server = k
    sock.curve_serverkey = server
    sock.curve_publickey = public
    sock.curve_secretkey = secret


class Handshakes:
    """A socket's CURVE handshake events (made before it connects), to tell
    a refused certificate from a silence: refused() is whether the
    daemon's ZAP handler has said 400 since a handshake last succeeded."""

    def __init__(self, sock):
        self.sock = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                            | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._refused = False

    def refused(self):
        while self.sock.poll(0):
            ev = recv_monitor_message(self.sock)
            if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._refused = False
            elif ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and ev["value"] == 400:
                self._refused = True
        return self._refused

    def close(self):
        self.sock.close(linger=0)
