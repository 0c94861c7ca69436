"""The exceptions of the fascia module: one class per error code of
fasciad's control protocol (docs/protocol.md, "Error codes"), and
Unreachable for a daemon that does not answer in time."""


class FasciaError(Exception):
    """An error reply from fasciad (or, for the subclasses below that have
    no protocol code, a failure to get one).

    code     the protocol's token ("bad_request", ...)
    message  the daemon's text
    field    the request member at fault (invalid_profile: the JSON path
             inside the profile), or None
    reply    the whole reply object, or None
    """

    code = None

    def __init__(self, code, message, field=None, reply=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.field = field
        self.reply = reply

    def __str__(self):
        text = "%s: %s" % (self.code, self.message)
        if self.field:
            text += " (field %s)" % self.field
        return text


class BadRequest(FasciaError):
    code = "bad_request"


class UnknownCommand(FasciaError):
    code = "unknown_command"


class UnknownDevice(FasciaError):
    code = "unknown_device"


class UnknownProfile(FasciaError):
    code = "unknown_profile"


class InvalidProfile(FasciaError):
    code = "invalid_profile"


class Busy(FasciaError):
    code = "busy"


class Interlock(FasciaError):
    code = "interlock"


class Forbidden(FasciaError):
    """What the state does not take (pause while idle), or, with CURVE, what
    the certificate's role does not: then .role is the role needed."""
    code = "forbidden"

    @property
    def role(self):
        err = (self.reply or {}).get("error")
        role = err.get("role") if isinstance(err, dict) else None
        return role if isinstance(role, str) else None


class Internal(FasciaError):
    code = "internal"


class ProtocolError(FasciaError):
    """A reply that is not the protocol's (not JSON, no "ok", ...)."""
    code = "bad_reply"


class Unreachable(FasciaError, TimeoutError):
    """No reply within the timeout: the daemon is not there, or too slow, or
    (with CURVE) the server key is wrong."""
    code = "unreachable"


ERRORS = {cls.code: cls for cls in (
    BadRequest, UnknownCommand, UnknownDevice, UnknownProfile, InvalidProfile,
    Busy, Interlock, Forbidden, Internal)}


def error_from_reply(reply):
    """The exception for an ok:false reply (FasciaError for a code this
    module does not know: a newer daemon may add codes)."""
    err = reply.get("error")
    if not isinstance(err, dict):
        return ProtocolError("bad_reply", "ok:false without an error object",
                             reply=reply)
    code = err.get("code")
    message = err.get("message")
    if not isinstance(code, str):
        return ProtocolError("bad_reply", "error without a code", reply=reply)
    if not isinstance(message, str):
        message = ""
    field = err.get("field")
    if not isinstance(field, str):
        field = None
    return ERRORS.get(code, FasciaError)(code, message, field=field, reply=reply)
