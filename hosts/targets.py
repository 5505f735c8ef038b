"""A host as the target of an operation (operations.frame): with its connection open for the
handler, or without one, for work that opens its own (a reconcile, a first connect)."""
from __future__ import annotations

from hosts.connection import host_session
from hosts.models import Host
from operations.frame import Target

HOST = Target[Host](rows=Host.objects.all)
CONNECTED_HOST = Target[Host](rows=Host.objects.all, session=host_session)
