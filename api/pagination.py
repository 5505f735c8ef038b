from rest_framework.pagination import LimitOffsetPagination


class Pages(LimitOffsetPagination):
    """?limit=&offset=; one answer stays a bounded amount of work, whatever ?limit= asks."""

    default_limit = 100
    max_limit = 1000
