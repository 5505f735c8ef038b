from django.urls import path

from accounts import views_account as views, views_tokens

app_name = "account"
urlpatterns = [
    path("", views.AccountView.as_view(), name="home"),
    path("second-factor/", views.SecondFactorView.as_view(), name="second_factor"),
    path("second-factor/start/", views.TOTPStartView.as_view(), name="totp_start"),
    path("second-factor/confirm/", views.TOTPConfirmView.as_view(), name="totp_confirm"),
    path("second-factor/disable/", views.TOTPDisableView.as_view(), name="totp_disable"),
    path("sessions/end/", views.EndSessionsView.as_view(), name="end_sessions"),
    path("tokens/", views_tokens.TokenCreateView.as_view(), name="token_create"),
    path("tokens/<int:pk>/revoke/", views_tokens.TokenRevokeView.as_view(), name="token_revoke"),
]
