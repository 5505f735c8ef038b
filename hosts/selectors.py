from django.db.models import Count, Q, QuerySet, Sum

from domains.choices import ACTIVE_STATES, DomainState
from hosts.models import Host


def host_list() -> QuerySet[Host]:
    """Hosts with their VM counts by state and the vCPUs and memory their active VMs hold, by name
    (Meta.ordering does not apply to a GROUP BY query: PostgreSQL answered in any order)."""
    active = Q(domains__state__in=ACTIVE_STATES)
    return Host.objects.select_related("ssh_key").annotate(
        domain_count=Count("domains"),
        running_count=Count("domains", filter=Q(domains__state=DomainState.RUNNING)),
        paused_count=Count("domains", filter=Q(domains__state=DomainState.PAUSED)),
        shutoff_count=Count("domains", filter=Q(domains__state=DomainState.SHUTOFF)),
        vcpus_in_use=Sum("domains__vcpus", filter=active),
        memory_in_use_kib=Sum("domains__memory_kib", filter=active),
    ).order_by("name")


def mark_watched(hosts: list[Host]) -> list[Host]:
    """Sets host.watched: whether a listener holds the host's lease (live events flow), or None
    when Redis cannot say. A host nobody watches still syncs, but its pages stop following it."""
    import redis

    from events.watching import lease_holders
    from vmsite.redis_clients import redis_client

    try:
        holders = lease_holders(redis_client(socket_timeout=1, socket_connect_timeout=1),
                                [host.pk for host in hosts])
    except redis.RedisError:
        holders = {}
    for host in hosts:
        host.watched = (holders[host.pk] is not None) if host.pk in holders else None
    return hosts
