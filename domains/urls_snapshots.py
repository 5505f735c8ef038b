"""URLs of the VM snapshots pages (included by domains/urls.py)."""
urlpatterns: list = []
