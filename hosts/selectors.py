from django.db.models import Count, Q, QuerySet, Sum

from domains.choices import ACTIVE_STATES, DomainState
from hosts.models import Host


def host_list() -> QuerySet[Host]:
    """Hosts with their VM counts by state and the vCPUs and memory their active VMs hold."""
    active = Q(domains__state__in=ACTIVE_STATES)
    return Host.objects.select_related("ssh_key").annotate(
        domain_count=Count("domains"),
        running_count=Count("domains", filter=Q(domains__state=DomainState.RUNNING)),
        paused_count=Count("domains", filter=Q(domains__state=DomainState.PAUSED)),
        shutoff_count=Count("domains", filter=Q(domains__state=DomainState.SHUTOFF)),
        vcpus_in_use=Sum("domains__vcpus", filter=active),
        memory_in_use_kib=Sum("domains__memory_kib", filter=active),
    )
