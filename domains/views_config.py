"""Pages that change a VM (disks, NICs, vCPUs, memory, media, boot order, title and description) and
its XML pages. Each declares its form and its service; none calls libvirt."""
from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.access import ADMIN, OPERATE, VIEW
from accounts.mixins import Access

from domains import forms_config, services_config
from domains.models import Domain
from domains.services import DomainBusy
from storage.selectors import volume_offers


class ConfigFormView(Access, View):
    """GET shows the form; POST validates it and queues the change through `service`."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    template_name = "domains/config_form.html"
    form_class: type[forms_config.DomainForm]
    service: Callable
    title: str
    submit_label = "Queue the change"

    def get(self, request, pk: int):
        domain = self.object
        return self.render_form(request, domain, self.form_class(domain=domain, **self.form_kwargs(request)))

    def post(self, request, pk: int):
        domain = self.object
        form = self.form_class(request.POST, domain=domain, **self.form_kwargs(request))
        if not form.is_valid():
            return self.render_form(request, domain, form)
        try:
            operation = type(self).service(domain=domain, user=request.user, **self.arguments(form.cleaned_data))
        except DomainBusy as exc:
            form.add_error(None, f"{domain.name} is {exc}.")
            return self.render_form(request, domain, form, status=409)
        messages.info(request, f"{domain.name}: operation #{operation.pk} ({self.title.lower()}) queued.")
        return redirect("domains:detail", pk=domain.pk)

    def form_kwargs(self, request) -> dict:
        return {"user": request.user}

    def arguments(self, data: dict) -> dict:
        return {name: data[name] for name in self.form_class.base_fields if name in data}

    def render_form(self, request, domain: Domain, form, status: int | None = None):
        context = {"domain": domain, "form": form, "title": self.title, "submit_label": self.submit_label}
        if getattr(self, "offers_volumes", False):
            context["volume_offers"] = (form.volume_offers if hasattr(form, "volume_offers")
                                        else volume_offers(request.user, domain))
        return render(request, self.template_name, context, status=status or (400 if form.is_bound else 200))


class AttachDiskView(ConfigFormView):
    form_class = forms_config.AttachDiskForm
    service = services_config.domain_disk_attach
    title = "Add a disk"
    offers_volumes = True

    def arguments(self, data: dict) -> dict:
        return {name: data[name] for name in ("source", "pool", "volume", "bus", "readonly", "live", "persistent",
                                              "new_size", "new_format") if name in data}


class DetachDiskView(ConfigFormView):
    form_class = forms_config.DetachDiskForm
    service = services_config.domain_disk_detach
    title = "Remove a disk"


class AttachNicView(ConfigFormView):
    host_need = OPERATE  # a new NIC picks a network of the host (accounts.access.may_rewire_nics)
    form_class = forms_config.AttachNicForm
    service = services_config.domain_nic_attach
    title = "Add a network interface"


class DetachNicView(ConfigFormView):
    form_class = forms_config.DetachNicForm
    service = services_config.domain_nic_detach
    title = "Remove a network interface"


class NicFormView(ConfigFormView):
    """A form about one NIC: ?mac= picks it (the VM page's links)."""

    def get(self, request, pk: int):
        domain = self.object
        return self.render_form(request, domain, self.form_class(domain=domain, **self.form_kwargs(request),
                                                                 initial={"mac": request.GET.get("mac", "")}))


class NicLinkView(NicFormView):
    form_class = forms_config.NicLinkForm
    service = services_config.domain_nic_link_set
    title = "Set a NIC's link state"


class NicChangeView(NicFormView):
    form_class = forms_config.NicChangeForm
    service = services_config.domain_nic_change
    title = "Change a network interface"


class NicFilterView(NicFormView):
    host_need = OPERATE  # filters are the host's (accounts.access.may_rewire_nics)
    form_class = forms_config.NicFilterForm
    service = services_config.domain_nic_filter_set
    title = "Apply a network filter"


class VcpusView(ConfigFormView):
    form_class = forms_config.VcpusForm
    service = services_config.domain_vcpus_set
    title = "Set vCPUs"


class MemoryView(ConfigFormView):
    form_class = forms_config.MemoryForm
    service = services_config.domain_memory_set
    title = "Set memory"


class MediaView(ConfigFormView):
    form_class = forms_config.MediaForm
    service = services_config.domain_media_change
    title = "Change CD-ROM media"
    offers_volumes = True


class BootOrderView(ConfigFormView):
    form_class = forms_config.BootOrderForm
    service = services_config.domain_boot_order_set
    title = "Set the boot order"

    def arguments(self, data: dict) -> dict:
        return {"devices": data["devices"]}


class MetadataView(ConfigFormView):
    form_class = forms_config.MetadataForm
    service = services_config.domain_metadata_set
    title = "Set title and description"


class TagsView(ConfigFormView):
    form_class = forms_config.TagsForm
    service = services_config.domain_tags_set
    title = "Set tags"

    def get(self, request, pk: int):
        domain = self.object
        form = self.form_class(domain=domain, initial={"tags": ", ".join(domain.tags)}, **self.form_kwargs(request))
        return self.render_form(request, domain, form)


class XMLView(Access, View):
    """Whoever may see the VM may read its XML, as last stored (it holds no passwords)."""

    need, kind = VIEW, Domain
    queryset = Domain.objects.select_related("host")

    def get(self, request, pk: int):
        domain = self.object
        return render(request, "domains/config_xml.html", {"domain": domain})


class XMLRefreshView(Access, View):
    """Queue a read of the VM's state and XML; it changes nothing on the host."""

    need, kind = OPERATE, Domain
    queryset = Domain.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int):
        domain = self.object
        try:
            operation = services_config.domain_xml_refresh(domain=domain, user=request.user)
        except DomainBusy as exc:
            messages.error(request, f"{domain.name} is {exc}.")
        else:
            messages.info(request, f"{domain.name}: operation #{operation.pk} (refresh XML) queued.")
        return redirect("domains:config_xml", pk=domain.pk)


class XMLEditView(ConfigFormView):
    """Administrators only: the definition in full, refused unless the allowlist accepts it."""

    need = ADMIN

    template_name = "domains/config_xml_edit.html"
    form_class = forms_config.XMLEditForm
    service = services_config.domain_xml_define
    title = "Edit the XML"
    submit_label = "Define"

    def get(self, request, pk: int):
        domain = self.object
        return self.render_form(request, domain, self.form_class(domain=domain, **self.form_kwargs(request),
                                                                 initial={"xml": domain.xml_inactive}))
