"""libvirt's error codes, turned into a few typed exceptions at the boundary."""
from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import libvirt


class VirtError(Exception):
    """Something libvirt refused or could not do, in words a user can act on."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class HostUnavailable(VirtError):
    """The host cannot be reached, or the connection to it was lost."""


class NotFound(VirtError):
    pass


class AlreadyExists(VirtError):
    pass


class InvalidArgument(VirtError):
    pass


class OperationInvalid(VirtError):
    """The object is not in a state that allows this (e.g. starting a running domain)."""


class PermissionDenied(VirtError):
    pass


T = TypeVar("T")
P = ParamSpec("P")

_NOT_FOUND = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_NETWORK,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
    libvirt.VIR_ERR_NO_INTERFACE,
    libvirt.VIR_ERR_NO_NWFILTER,
    libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    libvirt.VIR_ERR_NO_NODE_DEVICE,
}
_ALREADY_EXISTS = {libvirt.VIR_ERR_DOM_EXIST}
_INVALID_ARGUMENT = {
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_NO_SUPPORT,
}
_OPERATION_INVALID = {libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_OPERATION_FAILED}
_PERMISSION_DENIED = {libvirt.VIR_ERR_AUTH_FAILED, libvirt.VIR_ERR_AUTH_CANCELLED, libvirt.VIR_ERR_ACCESS_DENIED,
                      libvirt.VIR_ERR_OPERATION_DENIED}
# Only failures of the RPC layer itself mean the connection is gone (nova's rule).
_CONNECTION_LOST_DOMAINS = {libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC}
_CONNECTION_LOST_CODES = {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR}


def is_connection_lost(exc: libvirt.libvirtError) -> bool:
    return exc.get_error_code() in _CONNECTION_LOST_CODES and exc.get_error_domain() in _CONNECTION_LOST_DOMAINS


def translate(exc: libvirt.libvirtError) -> VirtError:
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code in _NOT_FOUND:
        return NotFound(message, code=code)
    if code in _ALREADY_EXISTS:
        return AlreadyExists(message, code=code)
    if code in _INVALID_ARGUMENT:
        return InvalidArgument(message, code=code)
    if code in _PERMISSION_DENIED:
        return PermissionDenied(message, code=code)
    if code in _OPERATION_INVALID:
        return OperationInvalid(message, code=code)
    if is_connection_lost(exc) or code == libvirt.VIR_ERR_NO_CONNECT:
        return connect_failure(message, code=code)
    return VirtError(message, code=code)


# What a failed connect says, in the words libvirt, ssh and the resolver use, and what it means.
_CONNECT_FAILURES = [
    (("REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key verification failed"), "host key changed",
     "The host's SSH key differs from the one vmsite pinned. If the host was reinstalled, an "
     "administrator can accept the new key on the host's page."),
    (("Name or service not known", "Could not resolve hostname", "Temporary failure in name resolution",
      "No address associated with hostname", "nodename nor servname"), "name does not resolve",
     "The host name does not resolve to an address."),
    (("Connection refused",), "refused", "The host refused the connection: is libvirtd (or sshd) listening on that port?"),
    (("timed out", "keepalive timeout", "No route to host", "Network is unreachable"), "timeout",
     "The host did not answer in time."),
    (("TLS handshake failed", "certificate", "GnuTLS"), "TLS failed",
     "The TLS handshake failed: check that the host runs libvirtd with TLS on that port, and the CA "
     "certificate, client certificate and key uploaded for it."),
    (("libvirt-sock': Permission denied", "libvirt-sock: Permission denied"), "socket permission denied",
     "The SSH user may not use the host's libvirt socket: add it to the host's libvirt group (the group "
     "libvirtd's unix_sock_group names, with unix_sock_rw_perms 0770), or allow it with a polkit rule for "
     "org.libvirt.unix.manage."),
    (("Permission denied (publickey", "Permission denied, please try again", "authentication failed",
      "Authentication failed", "Too many authentication failures"), "auth failed",
     "Authentication failed: is vmsite's public key in the host's authorized_keys?"),
    (("polkit", "access denied", "authentication unavailable", "Unable to get system bus connection"),
     "permission denied by polkit",
     "The host's libvirtd asked polkit (auth_unix_rw = \"polkit\") whether this user may manage libvirt, and "
     "polkit refused or could not answer (is polkitd running there?): add a polkit rule allowing "
     "org.libvirt.unix.manage for this user, or put the user in the host's libvirt group."),
]


def describe_connect_failure(message: str) -> tuple[str, str]:
    """(reason, explanation) for a failed connection, from the error text."""
    for needles, reason, explanation in _CONNECT_FAILURES:
        if any(needle in message for needle in needles):
            return reason, explanation
    return "unavailable", "The host cannot be reached."


SASL_FAILED = "SASL authentication failed"
CREDENTIALS_UNREADABLE = "credentials unreadable"


def credentials_unreadable(detail: str) -> HostUnavailableReason:
    """A stored credential of the host does not open in this process (another key-encryption key)."""
    return HostUnavailableReason(
        f"{CREDENTIALS_UNREADABLE}: This node cannot open the host's stored credentials: give it the "
        f"installation's key-encryption key (SECRET_BOX_KEY or SECRET_BOX_KEY_FILE, the same on every "
        f"node). ({detail})", reason=CREDENTIALS_UNREADABLE)


def sasl_failure(raw_message: str, *, login_given: bool, code: int | None = None) -> HostUnavailableReason:
    """A TCP or TLS libvirtd refused the login (libvirtd tells a client no more than that)."""
    if login_given:
        explanation = ("The host refused the SASL user name and password: check that the user is in the host's "
                       "SASL database (saslpasswd2 -a libvirt <user>) and in its sasl_allowed_username_list if "
                       "it has one, that mech_list in its /etc/sasl2/libvirt.conf offers digest-md5 (plain TCP) "
                       "or scram-sha-256 (TLS), and the password.")
    else:
        explanation = ("The host asks for a SASL login (auth_tcp or auth_tls = \"sasl\"): enter the SASL user "
                       "name and password on the host's form.")
    detail = raw_message.strip().splitlines()[-1] if raw_message.strip() else ""
    return HostUnavailableReason(f"{SASL_FAILED}: {explanation} ({detail})", reason=SASL_FAILED, code=code)


class HostUnavailableReason(HostUnavailable):
    """A failed connect with its reason named: `reason` is one of the _CONNECT_FAILURES labels."""

    def __init__(self, message: str, *, reason: str, code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.reason = reason


def connect_failure(raw_message: str, *, code: int | None = None) -> HostUnavailableReason:
    reason, explanation = describe_connect_failure(raw_message)
    detail = raw_message.strip().splitlines()[-1] if raw_message.strip() else ""
    return HostUnavailableReason(f"{reason}: {explanation} ({detail})" if detail else f"{reason}: {explanation}",
                                 reason=reason, code=code)


@contextmanager
def translated() -> Iterator[None]:
    """libvirt errors raised inside leave as typed VirtErrors."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(exc) from exc


def has_code(exc: libvirt.libvirtError | VirtError, *codes: int) -> bool:
    """Whether a raw or an already translated libvirt error carries one of `codes`."""
    code = exc.get_error_code() if isinstance(exc, libvirt.libvirtError) else exc.code
    return code in codes


def lookup_or_none(call: Callable[..., T], *args: object, missing: Collection[int] = frozenset(_NOT_FOUND)) -> T | None:
    """call(*args), or None when libvirt answers with one of the `missing` codes (by default: no
    such object); any other libvirt error leaves as a typed VirtError."""
    try:
        with translated():
            return call(*args)
    except VirtError as exc:
        if exc.code in missing:
            return None
        raise


@contextmanager
def tolerating(*codes: int) -> Iterator[None]:
    """libvirt errors with one of `codes` end the block quietly (an object gone while we looked, a
    driver that cannot); any other leaves as a typed VirtError."""
    try:
        with translated():
            yield
    except VirtError as exc:
        if exc.code not in codes:
            raise


def raises_typed(function: Callable[P, T]) -> Callable[P, T]:
    """For a public function of virt/: a libvirt error raised inside leaves as a typed VirtError."""
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated():
            return function(*args, **kwargs)
    return wrapper
