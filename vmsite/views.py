from django.db.models import Count
from django.views.generic import TemplateView

from domains.choices import DOMAIN_STATE_COLOURS, DomainState
from domains.models import Domain
from hosts.selectors import host_list, mark_watched
from operations.models import Operation


class DashboardView(TemplateView):
    template_name = "dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = dict(Domain.objects.values_list("state").annotate(n=Count("id")))
        context["hosts"] = mark_watched(list(host_list()))
        context["state_counts"] = [
            (DomainState(state).label, DOMAIN_STATE_COLOURS[state], counts[state]) for state in sorted(counts)
        ]
        context["domain_total"] = sum(counts.values())
        context["operations"] = Operation.objects.select_related("user")[:10]
        return context
