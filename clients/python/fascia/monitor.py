"""Monitor: a subscriber to fasciad's publisher (docs/protocol.md, "Topics"),
and SeqTracker, which notices lost messages from the per-device seq."""
import collections
import json
import os
import time

import zmq

from . import _curve
from ._socket import SocketOwner
from .client import PUBLISH_DEFAULT

_DEFAULT = object()

Message = collections.namedtuple("Message", "topic kind device seq data")
Message.__doc__ = """One published message.

topic   "state.sim", "event.sim", "alarm.sim"
kind    "state", "event" or "alarm" (the topic's first part)
device  the device's name
seq     the per-device sequence number (None if the message had none)
data    the whole JSON object"""


class SeqTracker:
    """Counts gaps in per-device sequence numbers.

    A gap is a seq more than 1 above the device's previous one (the messages
    in between were lost: PUB drops to a slow subscriber).  A seq at or
    below the previous one means the daemon restarted (seq starts at 1
    again): the device's count starts afresh and `resets` counts it.  The
    first seq seen for a device is never a gap: a subscriber joins late.
    """

    def __init__(self):
        self.last = {}
        self.gaps = 0
        self.gaps_per_device = {}
        self.lost = 0
        self.lost_per_device = {}
        self.resets = 0

    def feed(self, device, seq):
        """Record one message; returns how many messages were lost just
        before it (0: none)."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return 0
        prev = self.last.get(device)
        self.last[device] = seq
        if prev is None:
            return 0
        if seq <= prev:
            self.resets += 1
            return 0
        missed = seq - prev - 1
        if missed > 0:
            self.gaps += 1
            self.gaps_per_device[device] = self.gaps_per_device.get(device, 0) + 1
            self.lost += missed
            self.lost_per_device[device] = self.lost_per_device.get(device, 0) + missed
        return missed


class Monitor(SocketOwner):
    """A SUB socket on fasciad's publisher.

    endpoint  default $FASCIA_PUBLISH, else tcp://127.0.0.1:7411
    topics    prefixes to subscribe to ("state.sim" for one device's state)
    timeout   seconds next() and iteration wait for a message; None: forever.
              Iteration ends when it passes with no message.
    cert, server_key  CURVE, as for Client (default $FASCIA_CERT,
              $FASCIA_SERVER_KEY): with a wrong server key nothing arrives.

    The SUB join is asynchronous: messages published in the first moments
    after the Monitor is made may not arrive (state is repeated at
    publish_hz, so a state message soon does).
    """

    def __init__(self, endpoint=None, topics=("state.", "event.", "alarm."),
                 timeout=None, context=None, cert=None, server_key=None):
        self.endpoint = endpoint or os.environ.get("FASCIA_PUBLISH") or PUBLISH_DEFAULT
        self.timeout = timeout
        self.sock = None
        keys = _curve.keys(cert, server_key)
        self.secure = keys is not None
        self.tracker = SeqTracker()
        self.bad = 0              # messages that were not [topic, JSON object]
        ctx = context or zmq.Context.instance()
        self.sock = ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 100000)
        if isinstance(topics, str):
            topics = (topics,)
        for t in topics:
            self.sock.setsockopt(zmq.SUBSCRIBE, t.encode())
        _curve.apply(self.sock, keys)
        self.sock.connect(self.endpoint)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    # gap counts, from the tracker
    gaps = property(lambda self: self.tracker.gaps)
    gaps_per_device = property(lambda self: self.tracker.gaps_per_device)
    lost = property(lambda self: self.tracker.lost)

    def next(self, timeout=_DEFAULT):
        """The next message, or None when timeout seconds (default: the
        monitor's; None: no limit) pass without one."""
        if self.sock is None:
            raise ValueError("the monitor is closed")
        if timeout is _DEFAULT:
            timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                wait = None
            else:
                wait = max(0, int((deadline - time.monotonic()) * 1000))
            if not self.poller.poll(wait):
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            msg = self._parse(self.sock.recv_multipart())
            if msg is not None:
                return msg

    def _parse(self, frames):
        try:
            if len(frames) != 2:
                raise ValueError("not two frames")
            topic = frames[0].decode()
            data = json.loads(frames[1])
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except ValueError:                 # UnicodeDecodeError is one
            self.bad += 1
            return None
        kind, _, rest = topic.partition(".")
        device = data.get("device", rest)
        seq = data.get("seq")
        self.tracker.feed(device, seq)
        return Message(topic, kind, device, seq, data)

    def wait_for(self, predicate, timeout):
        """The first message for which predicate(message) is true, or None
        if timeout seconds pass first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            msg = self.next(left)
            if msg is None:
                return None
            if predicate(msg):
                return msg

    def __iter__(self):
        return self

    def __next__(self):
        msg = self.next()
        if msg is None:
            raise StopIteration
        return msg
