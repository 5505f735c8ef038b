"""The libvirt adapter. The only package that imports `libvirt`; it has no Django imports.

Plain arguments in, dataclasses or the typed exceptions of `virt.errors` out.
"""
