"""The audit log: administrators only, filterable, exportable as CSV, read-only."""
from __future__ import annotations

import csv
from datetime import datetime, time

from django import forms
from django.http import HttpRequest, StreamingHttpResponse
from django.utils import timezone
from django.views import View
from django.views.generic import ListView

from accounts.access import ADMIN
from accounts.mixins import Access
from accounts.models import AuditAction, AuditEvent


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(choices=[("", "Any action"), *AuditAction.choices], required=False)
    user = forms.CharField(required=False, max_length=150)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            raise forms.ValidationError("The first day comes after the last one.")
        return cleaned

    def filter(self, events):
        if not self.is_valid():
            return events.none()
        data = self.cleaned_data
        if data["action"]:
            events = events.filter(action=data["action"])
        if data["user"]:
            events = events.filter(username__iexact=data["user"].strip())
        zone = timezone.get_current_timezone()
        if data["since"]:
            events = events.filter(at__gte=datetime.combine(data["since"], time.min, zone))
        if data["until"]:
            events = events.filter(at__lte=datetime.combine(data["until"], time.max, zone))
        return events


class AdministratorsOnly(Access):
    need = ADMIN


class AuditListView(AdministratorsOnly, ListView):
    template_name = "accounts/audit_list.html"
    context_object_name = "events"
    paginate_by = 100

    def get_queryset(self):
        self.filter_form = AuditFilterForm(self.request.GET or None)
        events = AuditEvent.objects.select_related("user")
        return self.filter_form.filter(events) if self.request.GET else events

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["filter_form"] = self.filter_form
        context["query"] = self.request.GET.urlencode()
        return context


class _Echo:
    def write(self, value: str) -> str:
        return value


class AuditExportView(AdministratorsOnly, View):
    http_method_names = ["get"]
    COLUMNS = ("at", "username", "address", "action", "target", "result", "detail")

    def get(self, request: HttpRequest) -> StreamingHttpResponse:
        form = AuditFilterForm(request.GET or None)
        events = form.filter(AuditEvent.objects.all()) if request.GET else AuditEvent.objects.all()
        writer = csv.writer(_Echo())
        rows = (writer.writerow([_cell(getattr(event, column)) for column in self.COLUMNS])
                for event in events.iterator())
        response = StreamingHttpResponse((line for part in ([writer.writerow(self.COLUMNS)], rows) for line in part),
                                         content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="vmsite-audit.csv"'
        return response


def _cell(value) -> str:
    text = value.isoformat() if isinstance(value, datetime) else "" if value is None else str(value)
    # A cell starting with = + - @ would be a formula in a spreadsheet: keep it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
