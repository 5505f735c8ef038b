"""URLs of the VM migration pages (included by domains/urls.py)."""
urlpatterns: list = []
