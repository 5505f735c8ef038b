from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.functional import SimpleLazyObject
from django.views import View
from django.views.generic import DetailView, ListView

from accounts.access import ADMIN, OPERATE, domains_for, hosts_for, may, operable_ids, operations_for
from accounts.audit import audit
from accounts.mixins import Access, LiveFragments
from accounts.models import AuditAction
from hosts import host_keys, selectors, services
from hosts.choices import HostStatus, Transport
from hosts.forms import HostForm, PageHostForm
from hosts.models import Host
from hosts.ssh import SSHMaterialError, host_key_fingerprints
from operations.choices import OperationState


class HostListView(Access, LiveFragments, ListView):
    template_name = "hosts/host_list.html"
    fragments = {"host-list-live": "hosts/_host_list_live.html"}
    context_object_name = "hosts"

    def get_queryset(self):
        return selectors.mark_watched(list(selectors.host_list().filter(pk__in=hosts_for(self.request.user).values("pk"))))


class HostDetailView(Access, LiveFragments, DetailView):
    kind = Host
    template_name = "hosts/host_detail.html"
    fragments = {"host-live": "hosts/_host_live.html", "host-page": "hosts/_host_page.html"}
    context_object_name = "host"
    queryset = selectors.host_list()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        host = self.object
        selectors.mark_watched([host])
        domains = list(domains_for(self.request.user).filter(host=host))
        operations = list(operations_for(self.request.user).filter(host=host).select_related("user")[:10])
        context.update(
            domains=domains,
            operable=operable_ids(self.request.user, domains),
            pools=host.pools.all(),
            networks=host.networks.all(),
            operations=operations,
            banners=_still_news(host, operations),
            can_operate_host=SimpleLazyObject(lambda: may(self.request.user, OPERATE, host)),  # the header's alone
            host_key_fingerprints=host_key_fingerprints(host.ssh_host_keys),
            host_key_changed=host.transport == Transport.SSH and host.status_reason.startswith("host key changed"),
            caps=host.capabilities or {},
        )
        return context


def _still_news(host: Host, operations) -> list:
    """The host's operations, less the failed connects and syncs the host has since recovered from
    (it is online and was seen after they failed): their red boxes would contradict its status."""
    def outdated(operation) -> bool:
        return (operation.kind in ("host.connect", "host.sync") and operation.state == OperationState.FAILED
                and host.status == HostStatus.ONLINE and host.last_seen is not None
                and operation.finished_at is not None and operation.finished_at <= host.last_seen)
    return [operation for operation in operations if not outdated(operation)]


class HostFormMixin(Access):
    need = ADMIN
    template_name = "hosts/host_form.html"

    def render_form(self, request, form: HostForm, host: Host | None = None):
        context = {"form": form, "host": host, "public_key": services.installation_ssh_key().public_key}
        return render(request, self.template_name, context, status=400 if form.is_bound else 200)

    def confirm_host_key(self, request, form: HostForm, fields: dict, host: Host | None = None):
        """Trust on first use, made visible: the first POST scans the host's SSH keys and shows them to
        confirm; the second (with the token) pins exactly those, if the host still presents them.
        Returns a page to show, or None once `fields` carry the confirmed keys."""
        token = request.POST.get("host_key_token", "")
        if not token:
            try:
                scanned = host_keys.host_keys_scan(fields["address"], fields["port"])
            except SSHMaterialError as exc:
                form.add_error("address", f"vmsite could not read this host's SSH key ({exc}): check the address, "
                                          "the port and that sshd runs there. Nothing was saved.")
                return self.render_form(request, form, host)
            offer = host_keys.host_key_offer(address=fields["address"], port=fields["port"], known_hosts=scanned,
                                             private_key=fields["private_key"])
            return render(request, "hosts/host_confirm_key.html", {
                "form": form, "host": host, "keys": host_keys.host_keys_of(scanned), "token": offer,
                "endpoint": f"{fields['address']}:{fields['port'] or 22}"})
        try:
            known_hosts, private_key = host_keys.host_key_confirmed(token, address=fields["address"],
                                                                    port=fields["port"])
        except host_keys.HostKeyRefused as exc:
            form.add_error(None, str(exc))
            return self.render_form(request, form, host)
        fields["ssh_host_keys"] = known_hosts
        fields["private_key"] = fields["private_key"] or private_key
        return None


def _needs_key_confirmed(fields: dict, host: Host | None) -> bool:
    """A new SSH host, or one whose endpoint changes (another machine, maybe). An edit that keeps the
    endpoint keeps what is pinned (a host registered by the API or the command line without a
    fingerprint still pins at its first connection), so that a host that is down can still be edited."""
    if fields["transport"] != Transport.SSH:
        return False
    return (host is None or host.transport != Transport.SSH
            or (fields["address"], fields["port"]) != (host.address, host.port))


class HostCreateView(HostFormMixin, View):

    def get(self, request):
        return self.render_form(request, PageHostForm())

    def post(self, request):
        form = PageHostForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_form(request, form)
        fields = form.host_fields()
        if _needs_key_confirmed(fields, None):
            page = self.confirm_host_key(request, form, fields)
            if page is not None:
                return page
        host, operation = services.host_create(user=request.user, **fields)
        audit(request, AuditAction.HOST_ADDED, target=f"{host.name} ({host.uri})")
        messages.info(request, f"Host {host} registered; connecting (operation #{operation.pk}).")
        return redirect("hosts:detail", pk=host.pk)


class HostUpdateView(HostFormMixin, View):
    kind = Host

    def get(self, request, pk: int):
        host = self.object
        return self.render_form(request, PageHostForm(instance=host), host)

    def post(self, request, pk: int):
        host = self.object
        form = PageHostForm(request.POST, request.FILES, instance=host)
        if not form.is_valid():
            return self.render_form(request, form, host)
        fields = form.host_fields()
        if _needs_key_confirmed(fields, host):
            page = self.confirm_host_key(request, form, fields, host)
            if page is not None:
                return page
        operation = services.host_update(host=host, user=request.user, **fields)
        audit(request, AuditAction.HOST_CHANGED, target=f"{host.name} ({host.uri})",
              detail="changed: " + ", ".join(form.changed_data) if form.changed_data else "no field changed")
        messages.info(request, f"Host {host} saved; connecting (operation #{operation.pk}).")
        return redirect("hosts:detail", pk=host.pk)


class HostRemoveView(Access, View):
    need, kind = ADMIN, Host
    queryset = selectors.host_list()  # the page says how many VMs the host has

    def get(self, request, pk: int):
        host = self.object
        return render(request, "hosts/host_confirm_remove.html", {"host": host})

    def post(self, request, pk: int):
        host = self.object
        name = host.name
        services.host_remove(host=host)
        audit(request, AuditAction.HOST_REMOVED, target=name)
        messages.success(request, f"Host {name} removed from vmsite. Its guests were not touched.")
        return redirect("hosts:list")


class HostEnableView(Access, View):
    need, kind = ADMIN, Host
    http_method_names = ["post"]

    def post(self, request, pk: int):
        host = self.object
        enabled = request.POST.get("enabled") == "1"
        services.host_set_enabled(host=host, enabled=enabled)
        audit(request, AuditAction.HOST_CHANGED, target=host.name, detail="enabled" if enabled else "disabled")
        messages.info(request, f"Host {host} {'enabled' if enabled else 'disabled: it is no longer synced'}.")
        return redirect("hosts:detail", pk=host.pk)


class HostAcceptKeyView(Access, View):
    """After a reinstall: the first POST shows the key the host presents now, the second (with the
    token) pins exactly that key, if the host still presents it."""

    need, kind = ADMIN, Host
    http_method_names = ["post"]

    def post(self, request, pk: int):
        host = self.object
        if host.transport != Transport.SSH:
            raise Http404("Only an SSH host has a host key.")
        token = request.POST.get("host_key_token", "")
        if not token:
            return self.show_key(request, host)
        try:
            known_hosts, _key = host_keys.host_key_confirmed(token, address=host.address, port=host.port)
        except host_keys.HostKeyRefused as exc:
            messages.error(request, str(exc))
            return redirect("hosts:detail", pk=host.pk)
        operation = services.host_accept_new_host_key(host=host, user=request.user, known_hosts=known_hosts)
        audit(request, AuditAction.HOST_KEY_ACCEPTED, target=host.name,
              detail=", ".join(host_key_fingerprints(known_hosts)))
        messages.warning(request, f"Pinned the new SSH key of {host}; connecting (operation #{operation.pk}).")
        return redirect("hosts:detail", pk=host.pk)

    def show_key(self, request, host: Host):
        try:
            scanned = host_keys.host_keys_scan(host.address, host.port)
        except SSHMaterialError as exc:
            messages.error(request, f"vmsite could not read the SSH key of {host} ({exc}): nothing changed.")
            return redirect("hosts:detail", pk=host.pk)
        offer = host_keys.host_key_offer(address=host.address, port=host.port, known_hosts=scanned, private_key=None)
        return render(request, "hosts/host_confirm_key.html", {
            "host": host, "keys": host_keys.host_keys_of(scanned), "token": offer, "accepting": True,
            "endpoint": f"{host.address}:{host.port or 22}"})


class HostSyncView(Access, View):
    need, kind = OPERATE, Host
    http_method_names = ["post"]

    def post(self, request, pk: int):
        host = self.object
        operation = services.host_sync_enqueue(host=host, user=request.user)
        messages.info(request, f"Sync of {host} queued as operation #{operation.pk}.")
        return redirect("hosts:detail", pk=host.pk)
