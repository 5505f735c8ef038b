from django.db.models import Q, QuerySet

from domains.models import Domain

# Sort keys a user may ask for, and the columns behind them (name breaks ties, so pages are stable).
SORTS = {
    "name": ("name", "pk"),
    "host": ("host__name", "name", "pk"),
    "state": ("state", "name", "pk"),
    "vcpus": ("vcpus", "name", "pk"),
    "memory": ("memory_kib", "name", "pk"),
    "uuid": ("uuid",),
}


def domain_list(*, search: str = "", host_id: int | None = None, state: int | None = None,
                sort: str = "name") -> QuerySet[Domain]:
    domains = Domain.objects.select_related("host").only(
        "pk", "name", "uuid", "state", "vcpus", "memory_kib", "tags", "host_id", "host__name")
    if search:
        domains = domains.filter(_matches(search))
    if host_id is not None:
        domains = domains.filter(host_id=host_id)
    if state is not None:
        domains = domains.filter(state=state)
    descending = sort.startswith("-")
    columns = SORTS.get(sort.lstrip("-"), SORTS["name"])
    return domains.order_by(*(f"-{column}" if descending else column for column in columns))


def _matches(search: str) -> Q:
    query = Q(name__icontains=search)
    compact = search.replace("-", "").lower()
    if len(compact) >= 4 and all(c in "0123456789abcdef" for c in compact):
        query |= Q(uuid__icontains=search)
    return query
