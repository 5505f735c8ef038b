from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView

from django.core.exceptions import PermissionDenied

from accounts import audit
from accounts.access import (
    ADMIN, OPERATE, VIEW, download_refusal, hosts_for, may, may_give_volume, may_mark_shareable, operations_for,
    volume_record,
)
from accounts.mixins import Access, LiveFragments, render_page
from hosts.models import Host
from operations.models import Operation
from storage import selectors, services
from storage.choices import POOL_TYPE_LABELS
from storage.designer import pool_config
from storage.forms import (
    POOL_FIELDS, UNITS, DiscoverForm, PoolDefineForm, PoolDeleteForm, UploadForm, VolumeCloneForm, VolumeCreateForm,
    VolumeDeleteForm, VolumeGiveForm, VolumeResizeForm, VolumeShareableForm,
)
from storage.records import volume_give, volume_set_shareable, volume_take_back
from storage.models import StoragePool, Volume
from storage.uploads import CHUNK, WINDOW, upload_begin

DISCOVERED_FIELDS = ("source_host", "source_dir", "target_iqn")
DEFINE_PAGE_FRAGMENTS = {"discovery": "storage/_discovery.html"}  # refreshed when the discovery finishes


class PoolListView(Access, LiveFragments, ListView):
    template_name = "storage/pool_list.html"
    fragments = {"pool-list-live": "storage/_pool_list_live.html"}
    context_object_name = "pools"

    def get_queryset(self):
        return selectors.pool_list().filter(host_id__in=hosts_for(self.request.user).values("pk"))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["hosts"] = hosts_for(self.request.user).only("pk", "name")
        context["pool_types"] = POOL_TYPE_LABELS
        return context


class PoolDetailView(Access, LiveFragments, DetailView):
    kind = StoragePool
    template_name = "storage/pool_detail.html"
    fragments = {"pool-live": "storage/_pool_live.html", "pool-page": "storage/_pool_page.html"}
    context_object_name = "pool"
    queryset = StoragePool.objects.select_related("host")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        volumes = selectors.pool_volumes(self.object)
        left = selectors.left_behind(self.object, [volume for volume, _users in volumes])
        for volume, _users in volumes:  # a kept source copy names its VM only to those who may see it
            volume.left_by = left.get(volume.pk)
            volume.left_by_visible = volume.left_by is not None and may(self.request.user, VIEW, volume.left_by)
        context.update(
            volumes=volumes,
            operations=_operations(self.request.user, "storagepool", self.object.pk),
            type_label=POOL_TYPE_LABELS.get(self.object.pool_type, self.object.pool_type),
        )
        return context


class PoolDefineView(Access, View):
    need, kind, pk_kwarg = ADMIN, Host, "host_pk"

    def get(self, request, host_pk: int, pool_type: str = ""):
        host = self.object
        # A discovered export or target fills the form in; the form validates it on POST.
        initial = {name: request.GET[name] for name in DISCOVERED_FIELDS if name in request.GET}
        form = PoolDefineForm(host=host, pool_type=pool_type, initial=initial) if pool_type in POOL_FIELDS else None
        return render_define_page(request, host, pool_type, form)

    def post(self, request, host_pk: int, pool_type: str = ""):
        host = self.object
        if pool_type not in POOL_FIELDS:
            raise Http404("No such pool type")
        form = PoolDefineForm(request.POST, host=host, pool_type=pool_type)
        if not form.is_valid():
            return render_define_page(request, host, pool_type, form)
        data = form.cleaned_data
        operation = services.pool_define_enqueue(
            host=host, config=pool_config(pool_type=pool_type, data=data), build=data.get("build", False),
            start=data["start"], autostart=data["autostart"], user=request.user)
        messages.info(request, f"{data['name']}: operation #{operation.pk} (define pool) queued.")
        return redirect("operations:detail", pk=operation.pk)


def render_define_page(request, host: Host, pool_type: str, form, discover_form=None):
    """The new-pool page: the type's form, and for NFS and iSCSI the discovery box and its result."""
    discovery_id = request.GET.get("discovery") or ""
    discovery = (Operation.objects.filter(pk=discovery_id, kind="pool.discover", host=host).first()
                 if discovery_id.isdigit() else None)
    context = {"host": host, "pool_type": pool_type, "form": form, "pool_types": POOL_TYPE_LABELS,
               "discovery": discovery,
               "discover_form": discover_form or DiscoverForm(initial=form.initial if form else None)}
    bound = (form is not None and form.is_bound) or (discover_form is not None and discover_form.is_bound)
    return render_page(request, "storage/pool_define.html", context, DEFINE_PAGE_FRAGMENTS,
                       status=400 if bound else 200)


class PoolDiscoverView(Access, View):
    """POST: ask the host what an NFS server or an iSCSI portal offers; the new-pool page lists it."""

    need, kind, pk_kwarg = ADMIN, Host, "host_pk"
    http_method_names = ["post"]

    def post(self, request, host_pk: int, pool_type: str):
        host = self.object
        if pool_type not in ("netfs", "iscsi"):
            raise Http404("No discovery for this pool type")
        form = DiscoverForm(request.POST)
        if not form.is_valid():
            return render_define_page(request, host, pool_type, PoolDefineForm(host=host, pool_type=pool_type),
                                      discover_form=form)
        operation = services.pool_discover_enqueue(host=host, pool_type=pool_type,
                                                   source_host=form.cleaned_data["source_host"], user=request.user)
        query = urlencode({"discovery": operation.pk, "source_host": form.cleaned_data["source_host"]})
        return redirect(f"{reverse('storage:define_type', args=[host.pk, pool_type])}?{query}")


class PoolActionView(Access, View):
    need, kind = ADMIN, StoragePool
    queryset = StoragePool.objects.select_related("host")
    http_method_names = ["post"]

    def post(self, request, pk: int, action: str):
        if action not in services.POOL_ACTIONS or action == "delete":
            raise Http404("No such action")
        pool = self.object
        _enqueue(request, lambda: services.pool_action_enqueue(pool=pool, action=action, user=request.user),
                 f"{pool.name}: {services.POOL_ACTIONS[action].lower()}")
        if action == "undefine":
            return redirect("storage:list")
        return redirect("storage:pool", pk=pool.pk)


class PoolDeleteView(Access, View):
    need, kind = ADMIN, StoragePool
    queryset = StoragePool.objects.select_related("host")
    template_name = "storage/pool_delete.html"

    def get(self, request, pk: int):
        pool = self.object
        return _render(request, self.template_name, {"pool": pool}, PoolDeleteForm(pool=pool))

    def post(self, request, pk: int):
        pool = self.object
        form = PoolDeleteForm(request.POST, pool=pool)
        if form.is_valid() and _enqueue(
                request, lambda: services.pool_action_enqueue(pool=pool, action="delete", user=request.user),
                f"{pool.name}: delete"):
            return redirect("storage:pool", pk=pool.pk)
        return _render(request, self.template_name, {"pool": pool}, form)


class VolumeCreateView(Access, View):
    need, kind = ADMIN, StoragePool
    queryset = StoragePool.objects.select_related("host")
    template_name = "storage/volume_create.html"

    def get(self, request, pk: int):
        pool = self.object
        return _render(request, self.template_name, {"pool": pool}, VolumeCreateForm(pool=pool))

    def post(self, request, pk: int):
        pool = self.object
        form = VolumeCreateForm(request.POST, pool=pool)
        if form.is_valid() and _enqueue(
                request, lambda: services.volume_create_enqueue(pool=pool, arguments=form.arguments(), user=request.user),
                f"{form.cleaned_data['name']}: create"):
            return redirect("storage:pool", pk=pool.pk)
        return _render(request, self.template_name, {"pool": pool}, form)


class VolumeDetailView(Access, LiveFragments, DetailView):
    kind = Volume
    template_name = "storage/volume_detail.html"
    fragments = {"volume-page": "storage/_volume_page.html"}
    context_object_name = "volume"
    queryset = Volume.objects.select_related("pool", "host", "record")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user, volume = self.request.user, self.object
        record = volume_record(volume)
        context.update(
            download_refusal=download_refusal(user, volume),
            ownership=selectors.volume_ownership(volume, user),
            record=record,
            give_form=VolumeGiveForm(volume=volume) if may_give_volume(user, volume) else None,
            shareable_form=(VolumeShareableForm(initial={"shareable": bool(record and record.shareable)})
                            if may_mark_shareable(user) else None),
            users=selectors.volume_users(self.object),
            operations=_operations(self.request.user, "volume", self.object.pk),
            clone_form=VolumeCloneForm(volume=self.object),
            resize_form=VolumeResizeForm(volume=self.object),
        )
        return context


def volume_give_apply(request, volume: Volume, data) -> tuple[str | None, dict]:
    """Give (or take back) a volume, as the page and the API ask: (what happened, or None, and the
    form's errors). Whether the user may is accounts.access's answer."""
    if not may_give_volume(request.user, volume):
        raise PermissionDenied("Giving a volume to a VM is for operators of its host and administrators.")
    form = VolumeGiveForm(data, volume=volume)
    if not form.is_valid():
        return None, form.errors
    domain = form.cleaned_data["domain"]
    giving = not form.cleaned_data["take_back"]
    if giving:
        volume_give(volume=volume, domain=domain, user=request.user)
        done = f"{volume} given to {domain.name}: its users may attach it."
    else:
        volume_take_back(volume=volume, domain_uuid=domain.uuid)
        done = f"{volume} taken back from {domain.name}."
    audit.audit(request, "volume.give" if giving else "volume.take_back", target=str(volume),
                detail=f"VM {domain.name} ({domain.uuid})")
    return done, {}


def volume_shareable_apply(request, volume: Volume, data) -> str:
    if not may_mark_shareable(request.user):
        raise PermissionDenied("Only administrators may mark a volume shareable.")
    form = VolumeShareableForm(data)
    form.is_valid()  # a single optional tick: always valid
    shareable = bool(form.cleaned_data.get("shareable"))
    volume_set_shareable(volume=volume, shareable=shareable)
    audit.audit(request, "volume.shareable", target=str(volume), detail="on" if shareable else "off")
    return f"{volume} is {'now shareable' if shareable else 'no longer shareable'}."


class VolumeGiveView(Access, View):
    """POST: give the volume to a VM of its host, or take it back (host operators, administrators)."""

    need, kind = OPERATE, Volume
    queryset = Volume.objects.select_related("pool", "host", "record")

    def post(self, request, pk: int):
        volume = self.object
        done, errors = volume_give_apply(request, volume, request.POST)
        for field_errors in errors.values():
            for error in field_errors:
                messages.error(request, error)
        if done:
            messages.success(request, done)
        return redirect("storage:volume", pk=volume.pk)


class VolumeShareableView(Access, View):
    """POST: mark the volume shareable or not (administrators)."""

    need, kind = ADMIN, Volume
    queryset = Volume.objects.select_related("pool", "host")

    def post(self, request, pk: int):
        volume = self.object
        messages.success(request, volume_shareable_apply(request, volume, request.POST))
        return redirect("storage:volume", pk=volume.pk)


class VolumeFormView(Access, View):
    """A volume action with a form: clone, resize, delete."""

    need, kind = ADMIN, Volume
    queryset = Volume.objects.select_related("pool", "host")
    action = ""
    form_class = None
    template_name = ""

    def get(self, request, pk: int):
        volume = self.object
        return _render(request, self.template_name, self._context(volume), self._form(volume))

    def post(self, request, pk: int):
        volume = self.object
        form = self._form(volume, request.POST)
        if form.is_valid() and _enqueue(
                request, lambda: services.volume_action_enqueue(volume=volume, action=self.action, user=request.user,
                                                                arguments=self.arguments(form)),
                f"{volume.name}: {self.action}"):
            return redirect("storage:volume", pk=volume.pk)
        return _render(request, self.template_name, self._context(volume), form)

    def _context(self, volume: Volume) -> dict:
        return {"volume": volume, "users": selectors.volume_users(volume), "action": self.action}

    def _form(self, volume: Volume, data=None):
        return self.form_class(data, volume=volume)

    def arguments(self, form) -> dict:
        return dict(form.cleaned_data)


class VolumeCloneView(VolumeFormView):
    action = "clone"
    form_class = VolumeCloneForm
    template_name = "storage/volume_form.html"


class VolumeResizeView(VolumeFormView):
    action = "resize"
    form_class = VolumeResizeForm
    template_name = "storage/volume_form.html"


class VolumeDeleteView(VolumeFormView):
    action = "delete"
    form_class = VolumeDeleteForm
    template_name = "storage/volume_delete.html"

    def _form(self, volume: Volume, data=None):
        return VolumeDeleteForm(data, volume=volume, users=selectors.volume_users(volume))

    def arguments(self, form) -> dict:
        return {"detach": form.cleaned_data["detach"]}


class VolumeActionView(Access, View):
    """Actions without a form: wipe (it asks for confirmation in the page) and checksum."""

    need, kind = ADMIN, Volume
    queryset = Volume.objects.select_related("pool", "host")
    http_method_names = ["post"]

    def post(self, request, pk: int, action: str):
        if action not in ("wipe", "checksum"):
            raise Http404("No such action")
        volume = self.object
        if action == "wipe" and selectors.volume_users(volume):
            messages.error(request, f"{volume.name} is in use by a VM: it is not wiped.")
        else:
            _enqueue(request, lambda: services.volume_action_enqueue(volume=volume, action=action, user=request.user),
                     f"{volume.name}: {action}")
        return redirect("storage:volume", pk=volume.pk)


class UploadView(Access, View):
    """GET: the upload page. POST (from its script): validate, and start an upload session."""

    need, kind = ADMIN, StoragePool
    queryset = StoragePool.objects.select_related("host")
    template_name = "storage/upload.html"

    def get(self, request, pk: int):
        pool = self.object
        form = UploadForm(pool=pool, initial={"volume": request.GET.get("volume")})
        return render(request, self.template_name, {"pool": pool, "form": form, "chunk": CHUNK, "window": WINDOW})

    def post(self, request, pk: int):
        pool = self.object
        form = UploadForm(request.POST, pool=pool)
        if not form.is_valid():
            return JsonResponse({"errors": {field: [str(e) for e in errors] for field, errors in form.errors.items()}},
                                status=400)
        volume = form.cleaned_data.get("volume")
        try:
            operation = upload_begin(pool=pool, volume=volume, name=form.cleaned_data.get("name") or "",
                                     size=form.cleaned_data["size"], user=request.user,
                                     fmt=form.cleaned_data["format"])
        except services.StorageBusy as exc:
            return JsonResponse({"errors": {"__all__": [f"{exc.target} is {exc}"]}}, status=409)
        return JsonResponse({"operation": operation.pk, "socket": f"/ws/storage/uploads/{operation.pk}/",
                             "status": f"/operations/{operation.pk}/"})


class IsoLibraryView(Access, TemplateView):
    template_name = "storage/iso_library.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["isos"] = selectors.iso_library().filter(host_id__in=hosts_for(self.request.user).values("pk"))
        return context


def _operations(user, target_type: str, pk: int):
    return operations_for(user).filter(target_type=target_type, target_id=pk).select_related("user")[:10]


def _enqueue(request, enqueue, label: str) -> bool:
    try:
        operation = enqueue()
    except services.StorageBusy as exc:
        messages.error(request, f"{exc.target} is {exc}")
        return False
    messages.info(request, f"{label}: operation #{operation.pk} queued.")
    return True


def _render(request, template: str, context: dict, form):
    return render(request, template, {**context, "form": form, "units": list(UNITS)},
                  status=400 if form.is_bound else 200)
