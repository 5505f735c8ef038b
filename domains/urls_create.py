"""URLs of the VM create pages (included by domains/urls.py)."""
urlpatterns: list = []
