from django.urls import path
from api import views, views_backups, views_resources as resources, views_vm_changes
from api.docs import Docs, Schema

app_name = "api"
urlpatterns = [
    path("schema/", Schema.as_view(), name="schema"),
    path("docs/", Docs.as_view(url_name="api:schema"), name="docs"),
    path("hosts/", views.HostList.as_view(), name="hosts"),
    path("hosts/<int:pk>/", views.HostDetail.as_view(), name="host"),
    path("hosts/<int:pk>/sync/", views.HostSync.as_view(), name="host_sync"),
    path("hosts/<int:host_pk>/pools/", resources.PoolDefineView.as_view(), name="pool_define"),
    path("hosts/<int:host_pk>/vms/", views.DomainCreate.as_view(), name="vm_create"),
    path("vms/", views.DomainList.as_view(), name="vms"),
    path("vms/<int:pk>/", views.DomainDetail.as_view(), name="vm"),
    path("vms/<int:pk>/actions/", views.DomainActionView.as_view(), name="vm_action"),
    path("vms/<int:pk>/rename/", views.DomainRename.as_view(), name="vm_rename"),
    path("vms/<int:pk>/migrate/", views.DomainMigrate.as_view(), name="vm_migrate"),
    *views_vm_changes.urlpatterns(),
    *views_backups.urlpatterns(),
    path("operations/", views.OperationList.as_view(), name="operations"),
    path("operations/<int:pk>/", views.OperationDetail.as_view(), name="operation"),
    path("operations/<int:pk>/cancel/", views.OperationCancel.as_view(), name="operation_cancel"),
    path("pools/", resources.PoolList.as_view(), name="pools"),
    path("pools/<int:pk>/", resources.PoolDetail.as_view(), name="pool"),
    path("pools/<int:pk>/actions/", resources.PoolActionView.as_view(), name="pool_action"),
    path("pools/<int:pk>/volumes/", resources.VolumeCreateView.as_view(), name="volume_create"),
    path("pools/<int:pk>/uploads/", resources.UploadStart.as_view(), name="upload_start"),
    path("volumes/", resources.VolumeList.as_view(), name="volumes"),
    path("volumes/<int:pk>/", resources.VolumeDetail.as_view(), name="volume"),
    path("volumes/<int:pk>/actions/", resources.VolumeActionView.as_view(), name="volume_action"),
    path("volumes/<int:pk>/give/", resources.VolumeGiveView.as_view(), name="volume_give"),
    path("volumes/<int:pk>/shareable/", resources.VolumeShareableView.as_view(), name="volume_shareable"),
    path("networks/", resources.NetworkList.as_view(), name="networks"),
    path("networks/<int:pk>/", resources.NetworkDetail.as_view(), name="network"),
    path("networks/<int:pk>/actions/", resources.NetworkActionView.as_view(), name="network_action"),
    path("grants/", resources.GrantList.as_view(), name="grants"),
    path("grants/<int:pk>/", resources.GrantDetail.as_view(), name="grant"),
]
