"""URLs of the VM config pages (included by domains/urls.py)."""
urlpatterns: list = []
