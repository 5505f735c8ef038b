from django.db import models


class ConsoleAccess(models.Model):
    """Holds the right to open VM consoles (VNC, serial, SPICE, screenshots); its table stays empty.

    A plain (managed) model rather than an unmanaged one, so that everything that walks the
    models finds a table."""

    class Meta:
        default_permissions = ()
        permissions = [("open_console", "Can open the consoles of VMs")]
