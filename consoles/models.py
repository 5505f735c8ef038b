from django.db import models


class ConsoleAccess(models.Model):
    """No table: the holder of the right to open VM consoles (VNC, serial, SPICE, screenshots)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("open_console", "Can open the consoles of VMs")]
