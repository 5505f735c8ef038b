from django.db.models import Count, Q, QuerySet

from domains.choices import DomainState
from hosts.models import Host


def host_list() -> QuerySet[Host]:
    return Host.objects.annotate(
        domain_count=Count("domains"),
        running_count=Count("domains", filter=Q(domains__state=DomainState.RUNNING)),
    )
