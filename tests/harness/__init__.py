"""Test harness: extra libvirt hosts on this machine (see README.md)."""
