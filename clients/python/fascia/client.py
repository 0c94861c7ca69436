"""Client: requests to fasciad's control socket (docs/protocol.md).

A DEALER socket that sends [empty delimiter][JSON] (the envelope a REQ
socket would use, so replies come back the same way) and matches replies to
requests by id.  A call that times out leaves its request's id behind; a
late reply to it is skipped when it arrives, never taken for a later call.

A reply with "id": null is the daemon's answer to a request it could not
parse (so could not read the id of), such as one with a NaN in it.  It came
back over this socket, so it answers one of this client's requests: the
call in progress when no earlier call is still unanswered; otherwise it is
counted as the oldest unanswered one's and skipped.  A wrong guess costs a
timeout (Unreachable), never another call's answer.
"""
import datetime
import json
import os
import time

import zmq

from . import _curve
from ._socket import SocketOwner
from .errors import ProtocolError, Unreachable, error_from_reply

CONTROL_DEFAULT = "tcp://127.0.0.1:7410"
PUBLISH_DEFAULT = "tcp://127.0.0.1:7411"


def _remaining_ms(deadline):
    return max(0, int((deadline - time.monotonic()) * 1000))


def _ms(t):
    """A time for since/until: Unix ms as given, or a datetime (a naive one
    is local time) in ms."""
    if isinstance(t, datetime.datetime):
        return int(round(t.timestamp() * 1000))
    return t


def _given(**args):
    """The arguments that are not None: only those are sent."""
    return {k: v for k, v in args.items() if v is not None}


class Client(SocketOwner):
    """A connection to fasciad's control endpoint.

    endpoint    the control endpoint; default $FASCIA_CONTROL, else
                tcp://127.0.0.1:7410
    timeout     seconds each call waits for its reply (Unreachable after)
    cert        CURVE: this client's secret certificate file
                (NAME.key_secret); default $FASCIA_CERT
    server_key  CURVE: the daemon's public key, 40 characters of Z85 or its
                public certificate file; default $FASCIA_SERVER_KEY

    cert and server_key go together (ValueError for one alone, or for a file
    or key that is not one; OSError for a file that cannot be read).
    """

    def __init__(self, endpoint=None, timeout=2.0, context=None, cert=None,
                 server_key=None):
        self.endpoint = endpoint or os.environ.get("FASCIA_CONTROL") or CONTROL_DEFAULT
        self.timeout = timeout
        self.sock = None
        self.handshakes = None
        keys = _curve.keys(cert, server_key)
        self.secure = keys is not None
        self.next_id = 1
        self.skipped = 0          # late or unmatched replies dropped
        self.unanswered = 0       # calls that timed out, their reply not come
        ctx = context or zmq.Context.instance()
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # Queue requests only on a live connection: a request sent while the
        # daemon is away times out here instead of being delivered, and
        # perhaps acted on, whenever the daemon comes back.
        self.sock.setsockopt(zmq.IMMEDIATE, 1)
        _curve.apply(self.sock, keys)
        if self.secure:
            self.handshakes = _curve.Handshakes(self.sock)
        self.sock.connect(self.endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    # ---- the protocol
    def request(self, req, timeout=None):
        """Send req (a dict; "v" and "id" are filled in) and return the whole
        reply dict, ok or not.  Raises Unreachable after timeout seconds
        (default: the client's), ProtocolError for a reply that is not the
        protocol's."""
        if self.sock is None:
            raise ValueError("the client is closed")
        req = dict(req)
        rid = self.next_id
        self.next_id += 1
        req["id"] = rid
        req.setdefault("v", 1)
        payload = json.dumps(req).encode()
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self.sock.setsockopt(zmq.SNDTIMEO, _remaining_ms(deadline))
        try:
            self.sock.send_multipart([b"", payload])
        except zmq.Again:
            raise Unreachable("unreachable", "no connection to %s within %.1f s%s"
                              % (self.endpoint, limit, self._why())) from None
        while True:
            left = _remaining_ms(deadline)
            if left <= 0 or not self.poller.poll(left):
                self.unanswered += 1          # its reply may still come
                raise Unreachable("unreachable", "no reply from %s within %.1f s to %s%s"
                                  % (self.endpoint, limit, req.get("cmd"), self._why()))
            frames = self.sock.recv_multipart()
            reply = self._parse(frames)
            if reply is not None and self._answers(reply, rid):
                return reply
            self.skipped += 1

    def close(self):
        if self.handshakes is not None:
            self.handshakes.close()
            self.handshakes = None
        super().close()

    def _why(self):
        """What no reply means, over CURVE (nothing to add in plaintext)."""
        if self.handshakes is None:
            return ""
        if self.handshakes.refused():
            return ": " + _curve.REFUSED_WHY
        return ": " + _curve.NO_REPLY_WHY

    def _answers(self, reply, rid):
        """Whether reply answers the call awaiting id rid; one that does
        not counts against the calls left unanswered."""
        got = reply.get("id")
        if got == rid and not isinstance(got, bool):
            return True
        if self.unanswered > 0:
            self.unanswered -= 1
            return False
        return got is None

    def _parse(self, frames):
        """The reply object, or None for one to skip."""
        if frames and frames[0] == b"":
            frames = frames[1:]
        if len(frames) != 1:
            return None
        try:
            reply = json.loads(frames[0])
        except ValueError:
            return None
        return reply if isinstance(reply, dict) else None

    def call(self, cmd, /, **args):
        """Run command cmd with its arguments; returns the result dict, or
        raises the FasciaError subclass of the reply's error code
        (BadRequest, UnknownDevice, ... ) or Unreachable."""
        req = {"cmd": cmd}
        req.update(args)
        reply = self.request(req)
        ok = reply.get("ok")
        if ok is True:
            result = reply.get("result")
            if not isinstance(result, dict):
                raise ProtocolError("bad_reply", "ok:true without a result object",
                                    reply=reply)
            return result
        if ok is False:
            raise error_from_reply(reply)
        raise ProtocolError("bad_reply", "reply without ok", reply=reply)

    # ---- commands
    def hello(self):
        """{"protocol", "version", "devices", "tick_hz", "publish_hz"}"""
        return self.call("hello")

    def devices(self):
        """The configured devices: a list of dicts (name, state, chambers ...)."""
        return self.call("devices")["devices"]

    def status(self, device=None):
        """One device's state (the state.<device> message), or without a
        device a list of every device's."""
        if device is None:
            return self.call("status")["devices"]
        return self.call("status", device=device)

    def profiles(self):
        """The stored profiles' summaries, in name order."""
        return self.call("profiles")["profiles"]

    def profile_get(self, name):
        """A stored profile document, in its canonical form."""
        return self.call("profile.get", name=name)["profile"]

    def profile_put(self, doc):
        """Validate and store a profile; {"name", "stored"}.  InvalidProfile
        names the offending part in .field."""
        return self.call("profile.put", profile=doc)

    def start(self, device, profile, patient=None, note=None):
        """Start a session; {"device", "state"}.  patient (1-64 of
        [A-Za-z0-9._-]) and note (up to 500 characters) are stored with the
        session in the journal, and sent only when given."""
        return self.call("start", device=device, profile=profile,
                         **_given(patient=patient, note=note))

    def pause(self, device):
        return self.call("pause", device=device)

    def resume(self, device):
        return self.call("resume", device=device)

    def stop(self, device):
        return self.call("stop", device=device)

    def vent(self, device):
        return self.call("vent", device=device)

    def ack(self, device):
        """Acknowledge the device's latched alarms (Interlock while a cause
        is present, Forbidden with no fault)."""
        return self.call("ack", device=device)

    # ---- the treatment record (docs/records.md, "The commands")
    def history(self, device=None, patient=None, since=None, until=None,
                limit=None, before=None):
        """Recorded sessions, newest first: {"sessions": [summary ...],
        "more": bool}.  since/until are Unix ms or datetimes (since <=
        started < until), limit 1..1000 (the daemon's default 50), before a
        session id (the page after it).  Only the arguments given are sent."""
        return self.call("history", **_given(
            device=device, patient=patient, since=_ms(since), until=_ms(until),
            limit=limit, before=before))

    def session(self, id, trace=False):
        """One recorded session: its summary, profile_document and log, and
        with trace=True its trace {"hz", "t0", "pressure", "setpoint"}.
        BadRequest (field "session") for an unknown id."""
        args = {"session": id}
        if trace:
            args["trace"] = True
        return self.call("session.get", **args)["session"]

    def log(self, device=None, kinds=None, since=None, until=None, limit=None,
            before=None):
        """Log entries, newest first: {"entries": [entry ...], "more": bool}.
        kinds: any of "alarm", "command", "state", "link", "daemon",
        "journal"; before: a seq.  Only the arguments given are sent."""
        return self.call("log", **_given(
            device=device, kinds=list(kinds) if kinds is not None else None,
            since=_ms(since), until=_ms(until), limit=limit, before=before))
