"""fascia: a Python client of fasciad (docs/protocol.md), for scripts and
test rigs.

    import fascia
    with fascia.Client() as c:                  # $FASCIA_CONTROL or :7410
        c.start("sim", "gentle-wave")
        print(c.status("sim")["state"])
    with fascia.Monitor(topics=("state.sim",)) as m:   # $FASCIA_PUBLISH or :7411
        for msg in m:
            print(msg.seq, msg.data["state"])

Errors are exceptions, one class per protocol error code (FasciaError and
its subclasses); Unreachable (also a TimeoutError) when no reply comes.

CURVE: Client(..., cert="alice.key_secret", server_key=KEY_OR_FILE), and
Monitor likewise; both default to $FASCIA_CERT and $FASCIA_SERVER_KEY.
"""
from .client import CONTROL_DEFAULT, PUBLISH_DEFAULT, Client
from .errors import (ERRORS, BadRequest, Busy, FasciaError, Forbidden, Interlock,
                     Internal, InvalidProfile, ProtocolError, Unreachable,
                     UnknownCommand, UnknownDevice, UnknownProfile)
from .monitor import Message, Monitor, SeqTracker
from .ready import NotReady, read_ready, ready_fields

__all__ = [
    "Client", "Monitor", "Message", "SeqTracker", "CONTROL_DEFAULT", "PUBLISH_DEFAULT",
    "FasciaError", "BadRequest", "UnknownCommand", "UnknownDevice", "UnknownProfile",
    "InvalidProfile", "Busy", "Interlock", "Forbidden", "Internal", "ProtocolError",
    "Unreachable", "ERRORS", "NotReady", "read_ready", "ready_fields",
]
