"""libvirt's error codes, turned into a few typed exceptions at the boundary."""
from __future__ import annotations

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
        return HostUnavailable(message, code=code)
    return VirtError(message, code=code)
