from django.urls import path

from storage.uploads import VolumeUploadConsumer

websocket_urlpatterns = [
    path("ws/storage/uploads/<int:operation_id>/", VolumeUploadConsumer.as_asgi()),
]
