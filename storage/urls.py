from django.urls import path

from storage import views
from storage.downloads import VolumeDownloadView

app_name = "storage"
urlpatterns = [
    path("", views.PoolListView.as_view(), name="list"),
    path("isos/", views.IsoLibraryView.as_view(), name="isos"),
    path("hosts/<int:host_pk>/new-pool/", views.PoolDefineView.as_view(), name="define"),
    path("hosts/<int:host_pk>/new-pool/<slug:pool_type>/", views.PoolDefineView.as_view(), name="define_type"),
    path("hosts/<int:host_pk>/new-pool/<slug:pool_type>/discover/", views.PoolDiscoverView.as_view(), name="discover"),
    path("pools/<int:pk>/", views.PoolDetailView.as_view(), name="pool"),
    path("pools/<int:pk>/delete/", views.PoolDeleteView.as_view(), name="pool_delete"),
    path("pools/<int:pk>/new-volume/", views.VolumeCreateView.as_view(), name="volume_create"),
    path("pools/<int:pk>/upload/", views.UploadView.as_view(), name="upload"),
    path("pools/<int:pk>/<slug:action>/", views.PoolActionView.as_view(), name="pool_action"),
    path("volumes/<int:pk>/", views.VolumeDetailView.as_view(), name="volume"),
    path("volumes/<int:pk>/clone/", views.VolumeCloneView.as_view(), name="volume_clone"),
    path("volumes/<int:pk>/resize/", views.VolumeResizeView.as_view(), name="volume_resize"),
    path("volumes/<int:pk>/delete/", views.VolumeDeleteView.as_view(), name="volume_delete"),
    path("volumes/<int:pk>/give/", views.VolumeGiveView.as_view(), name="volume_give"),
    path("volumes/<int:pk>/shareable/", views.VolumeShareableView.as_view(), name="volume_shareable"),
    path("volumes/<int:pk>/download/", VolumeDownloadView.as_view(), name="volume_download"),
    path("volumes/<int:pk>/<slug:action>/", views.VolumeActionView.as_view(), name="volume_action"),
]
