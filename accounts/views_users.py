"""Users and their grants, for administrators."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.generic import ListView

from accounts import services
from accounts.access import ADMIN
from accounts.forms_users import GrantForm, PasswordForm, UserCreateForm, UserUpdateForm
from accounts.mixins import Access
from accounts.models import Grant


class UserListView(Access, ListView):
    need = ADMIN
    template_name = "accounts/user_list.html"
    context_object_name = "users"

    def get_queryset(self):
        return (get_user_model().objects.annotate(grant_count=Count("grants")).select_related("totp")
                .order_by("username"))


class UserCreateView(Access, View):
    need = ADMIN

    def get(self, request):
        return render(request, "accounts/user_create.html", {"form": UserCreateForm()})

    def post(self, request):
        form = UserCreateForm(request.POST)
        if not form.is_valid():
            return render(request, "accounts/user_create.html", {"form": form}, status=400)
        user = services.user_create(request=request, **form.cleaned_data)
        messages.success(request, f"User {user.get_username()} added.")
        return redirect("users:detail", pk=user.pk)


class UserDetailView(Access, View):
    need = ADMIN

    def get(self, request, pk: int):
        return self.page(request, self.user(pk))

    @staticmethod
    def user(pk: int):
        return get_object_or_404(get_user_model(), pk=pk)

    def page(self, request, user, *, grant_form=None, update_form=None, password_form=None, status=200):
        context = {
            "account": user,
            "grants": Grant.objects.filter(user=user).select_related("host", "domain__host").order_by("pk"),
            "grant_form": grant_form or GrantForm(),
            "update_form": update_form or UserUpdateForm(initial={"active": user.is_active,
                                                                  "administrator": user.is_superuser}),
            "password_form": password_form or PasswordForm(user=user),
        }
        return render(request, "accounts/user_detail.html", context, status=status)


class GrantAddView(UserDetailView):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        user = self.user(pk)
        form = GrantForm(request.POST)
        if not form.is_valid():
            return self.page(request, user, grant_form=form, status=400)
        data = form.cleaned_data
        services.grant_set(request=request, user=user, host=data["host"], domain=data["domain"], role=data["role"])
        messages.success(request, f"{user.get_username()} is now {data['role']} on {data['domain'] or data['host']}.")
        return redirect("users:detail", pk=user.pk)


class GrantRemoveView(Access, View):
    need = ADMIN
    http_method_names = ["post"]

    def post(self, request, pk: int, grant_pk: int):
        grant = get_object_or_404(Grant.objects.select_related("user", "host", "domain"), pk=grant_pk, user_id=pk)
        services.grant_remove(request=request, grant=grant)
        messages.info(request, "Grant removed.")
        return redirect("users:detail", pk=pk)


class UserUpdateView(UserDetailView):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        user = self.user(pk)
        form = UserUpdateForm(request.POST)
        if form.is_valid():
            try:
                services.user_update(request=request, user=user, active=form.cleaned_data["active"],
                                     administrator=form.cleaned_data["administrator"])
            except services.LastAdministrator as exc:
                form.add_error(None, str(exc))
        if form.errors:
            return self.page(request, user, update_form=form, status=400)
        messages.success(request, f"{user.get_username()} saved.")
        return redirect("users:detail", pk=user.pk)


class UserPasswordView(UserDetailView):
    http_method_names = ["post"]

    def post(self, request, pk: int):
        user = self.user(pk)
        form = PasswordForm(request.POST, user=user)
        if not form.is_valid():
            return self.page(request, user, password_form=form, status=400)
        services.user_set_password(request=request, user=user, password=form.cleaned_data["password"])
        messages.success(request, f"New password set for {user.get_username()}; their sessions ended and their "
                                  "API tokens were revoked.")
        return redirect("users:detail", pk=user.pk)
