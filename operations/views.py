from django.contrib import messages
from django.shortcuts import redirect
from django.utils.functional import SimpleLazyObject
from django.views import View
from django.views.generic import DetailView, ListView

from accounts.access import OPERATE, may, operations_for
from accounts.mixins import Access, LiveFragments

from operations.choices import OperationState
from operations.models import Operation
from operations.registry import known_kinds
from operations.services import operation_request_cancel


class OperationListView(Access, LiveFragments, ListView):
    template_name = "operations/operation_list.html"
    fragments = {"operation-list-live": "operations/_operation_list_live.html"}
    context_object_name = "operations"
    paginate_by = 50

    def get_queryset(self):
        operations = operations_for(self.request.user).select_related("user", "host")
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
        context["usernames"] = (operations_for(self.request.user).exclude(user=None).order_by("user__username")
                                .values_list("user__username", flat=True).distinct())
        query = self.request.GET.copy()
        query.pop("page", None)
        context["query_string"] = query.urlencode()
        return context


class OperationDetailView(Access, LiveFragments, DetailView):
    kind = Operation
    template_name = "operations/operation_detail.html"
    fragments = {"operation-result": "operations/_operation_result.html",
                 "operation-facts": "operations/_operation_facts.html"}
    context_object_name = "operation"
    queryset = Operation.objects.select_related("user", "host")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        operation, user = self.object, self.request.user
        context["can_operate"] = SimpleLazyObject(lambda: may(user, OPERATE, operation))  # only if a part asks
        return context


class OperationStatusView(Access, DetailView):
    """The status fragment that live pages fetch again when the operation moves."""

    kind = Operation

    template_name = "operations/_operation_status.html"
    context_object_name = "operation"
    queryset = Operation.objects.all()

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "can_operate": may(self.request.user, OPERATE, self.object)}


class OperationCancelView(Access, View):
    """Stop a pending operation, or ask a running one that can stop midway (a migration) to stop."""

    need, kind = OPERATE, Operation
    http_method_names = ["post"]

    def post(self, request, pk: int):
        operation = self.object
        if operation_request_cancel(operation=operation, user=request.user):
            messages.info(request, f"Operation #{operation.pk}: cancel requested.")
        else:
            messages.error(request, f"Operation #{operation.pk} has finished or cannot be stopped midway.")
        return redirect("operations:detail", pk=operation.pk)
