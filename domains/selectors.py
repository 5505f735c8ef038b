from django.db.models import Q, QuerySet

from domains.models import Domain


def domain_list(*, search: str = "", host_id: int | None = None, state: int | None = None) -> QuerySet[Domain]:
    domains = Domain.objects.select_related("host")
    if search:
        domains = domains.filter(Q(name__icontains=search) | Q(uuid__icontains=search))
    if host_id is not None:
        domains = domains.filter(host_id=host_id)
    if state is not None:
        domains = domains.filter(state=state)
    return domains
