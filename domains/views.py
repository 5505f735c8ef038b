from django.views.generic import DetailView, ListView

from domains import selectors
from domains.choices import DomainState
from domains.models import Domain
from hosts.models import Host

PAGE_SIZE = 100


class DomainListView(ListView):
    template_name = "domains/domain_list.html"
    context_object_name = "domains"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        return selectors.domain_list(
            search=self.request.GET.get("q", "").strip(),
            host_id=_int_or_none(self.request.GET.get("host")),
            state=_int_or_none(self.request.GET.get("state")),
            sort=self.request.GET.get("sort", "name"),
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["hosts"] = Host.objects.only("pk", "name")
        context["states"] = DomainState.choices
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        query.pop("sort", None)
        context["filter_string"] = query.urlencode()
        context["sort"] = self.request.GET.get("sort", "name")
        return context


class DomainDetailView(DetailView):
    template_name = "domains/domain_detail.html"
    context_object_name = "domain"
    queryset = Domain.objects.select_related("host")


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
