"""URLs of the VM config pages (included by domains/urls.py)."""
from django.urls import path

from domains import views_config

urlpatterns: list = [
    path("<int:pk>/disks/add/", views_config.AttachDiskView.as_view(), name="config_disk_attach"),
    path("<int:pk>/disks/remove/", views_config.DetachDiskView.as_view(), name="config_disk_detach"),
    path("<int:pk>/nics/add/", views_config.AttachNicView.as_view(), name="config_nic_attach"),
    path("<int:pk>/nics/remove/", views_config.DetachNicView.as_view(), name="config_nic_detach"),
    path("<int:pk>/nics/link/", views_config.NicLinkView.as_view(), name="config_nic_link"),
    path("<int:pk>/nics/change/", views_config.NicChangeView.as_view(), name="config_nic_change"),
    path("<int:pk>/nics/filter/", views_config.NicFilterView.as_view(), name="config_nic_filter"),
    path("<int:pk>/vcpus/", views_config.VcpusView.as_view(), name="config_vcpus"),
    path("<int:pk>/memory/", views_config.MemoryView.as_view(), name="config_memory"),
    path("<int:pk>/media/", views_config.MediaView.as_view(), name="config_media"),
    path("<int:pk>/boot-order/", views_config.BootOrderView.as_view(), name="config_boot_order"),
    path("<int:pk>/metadata/", views_config.MetadataView.as_view(), name="config_metadata"),
    path("<int:pk>/tags/", views_config.TagsView.as_view(), name="config_tags"),
    path("<int:pk>/xml/", views_config.XMLView.as_view(), name="config_xml"),
    path("<int:pk>/xml/refresh/", views_config.XMLRefreshView.as_view(), name="config_xml_refresh"),
    path("<int:pk>/xml/edit/", views_config.XMLEditView.as_view(), name="config_xml_edit"),
]
