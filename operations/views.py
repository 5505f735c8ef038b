from django.contrib.auth import get_user_model
from django.views.generic import DetailView, ListView

from operations.choices import OperationState
from operations.models import Operation
from operations.registry import known_kinds


class OperationListView(ListView):
    template_name = "operations/operation_list.html"
    context_object_name = "operations"
    paginate_by = 50

    def get_queryset(self):
        operations = Operation.objects.select_related("user", "host")
        params = self.request.GET
        if params.get("state") in OperationState.values:
            operations = operations.filter(state=params["state"])
        if params.get("kind"):
            operations = operations.filter(kind=params["kind"])
        if params.get("user"):
            operations = operations.filter(user__username=params["user"])
        return operations

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["states"] = OperationState.choices
        context["kinds"] = known_kinds()
        context["usernames"] = get_user_model().objects.order_by("username").values_list("username", flat=True)
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        return context


class OperationDetailView(DetailView):
    template_name = "operations/operation_detail.html"
    context_object_name = "operation"
    queryset = Operation.objects.select_related("user", "host")


class OperationStatusView(DetailView):
    """The status fragment that the page polls (htmx) until the operation has finished."""

    template_name = "operations/_operation_status.html"
    context_object_name = "operation"
    queryset = Operation.objects.all()

    def render_to_response(self, context, **kwargs):
        response = super().render_to_response(context, **kwargs)
        if self.object.is_finished:
            response["HX-Trigger"] = "operation-finished"
        return response
