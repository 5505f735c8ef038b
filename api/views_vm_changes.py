"""Changes to a VM through the API: each route reuses a page's view for its form (what is accepted)
and its service (what is queued), so the API and the page cannot drift apart."""
from __future__ import annotations

from django.urls import path

from api import forms as api_forms
from api.base import ApiView, enqueue
from api.serializers import queues
from domains import views_config, views_snapshots
from domains.models import Domain
from domains.services import DomainBusy
from storage.forms import SizeField

# API route under /api/v1/vms/<id>/ -> the page view it stands for.
PAGE_VIEWS = {
    "disks/add": views_config.AttachDiskView, "disks/remove": views_config.DetachDiskView,
    "nics/add": views_config.AttachNicView, "nics/remove": views_config.DetachNicView,
    "nics/link": views_config.NicLinkView, "nics/change": views_config.NicChangeView,
    "nics/filter": views_config.NicFilterView, "vcpus": views_config.VcpusView,
    "memory": views_config.MemoryView, "media": views_config.MediaView,
    "boot-order": views_config.BootOrderView, "metadata": views_config.MetadataView,
    "tags": views_config.TagsView,
    "xml": views_config.XMLEditView,
    "snapshots/create": views_snapshots.SnapshotCreateView, "snapshots/revert": views_snapshots.SnapshotRevertView,
    "snapshots/delete": views_snapshots.SnapshotDeleteView, "clone": views_snapshots.DomainCloneView,
}


class VMChange(ApiView):
    """POST the page's form fields as JSON; 202 with the operation, 400 with the form's messages."""

    kind = Domain
    queryset = Domain.objects.select_related("host")
    page_view: type

    def post(self, request, pk: int):
        domain = self.get_object()
        page = self.page_view()
        extra = page.form_kwargs(request) if hasattr(page, "form_kwargs") else {"user": request.user}
        form = self.page_view.form_class(_with_sizes(api_forms.body(request), self.page_view.form_class), domain=domain,
                                         **extra)
        api_forms.valid(form)
        if hasattr(page, "enqueue"):  # the snapshot and clone pages queue through a method
            return enqueue(lambda: page.enqueue(request, domain, form), DomainBusy)
        arguments = page.arguments(form.cleaned_data)
        return enqueue(lambda: type(page).service(domain=domain, user=request.user, **arguments), DomainBusy)


def _with_sizes(data, form_class: type) -> dict:
    """A size is one number in the API (`new_size: 10`, `new_size_unit: "GiB"`, the default) and two
    fields in the form (new_size_0, new_size_1)."""
    data = dict(data.items())
    for name, field in form_class.base_fields.items():
        if isinstance(field, SizeField) and name in data:
            data[f"{name}_0"] = data.pop(name)
            data[f"{name}_1"] = data.pop(f"{name}_unit", "GiB")
    return data


def _api_view(page_view: type) -> type[VMChange]:
    name = page_view.form_class.__name__.removesuffix("Form")
    body = api_forms.schema_for(page_view.form_class, name)
    view = type(f"VM{name}", (VMChange,), {
        "page_view": page_view, "need": page_view.need, "host_need": getattr(page_view, "host_need", None),
        "serializer_class": body, "__doc__": f"{getattr(page_view, 'title', name)} (as on the VM's page)."})
    return queues(body)(view)


def urlpatterns() -> list:
    return [path(f"vms/<int:pk>/{route}/", _api_view(page_view).as_view(),
                 name="vm_" + route.replace("/", "_").replace("-", "_"))
            for route, page_view in PAGE_VIEWS.items()]
