"""The API validates with the pages' own forms, so both accept and refuse exactly the same input.
This module feeds a JSON body to a form, turns its errors into a 400, and describes a form's fields
in the OpenAPI schema."""
from __future__ import annotations

from collections.abc import Mapping

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework import serializers
from rest_framework.exceptions import ValidationError


def body(request) -> Mapping:
    """The request's body as a mapping; anything else (a JSON list or string) is the client's mistake."""
    if not isinstance(request.data, Mapping):
        raise ValidationError({"non_field_errors": ["Send a JSON object."]})
    return request.data


def pem_files(data: Mapping, names) -> dict[str, SimpleUploadedFile]:
    """Key and certificate fields arrive as PEM text; the forms take them as uploaded files."""
    files = {}
    for name in names:
        text = data.get(name)
        if text:
            files[name] = SimpleUploadedFile(f"{name}.pem", str(text).encode())
    return files


def valid(form: forms.Form) -> dict:
    """The form's cleaned data, or a 400 with its messages per field."""
    if not form.is_valid():
        raise ValidationError({"non_field_errors" if field == NON_FIELD_ERRORS else field: list(messages)
                               for field, messages in form.errors.items()})
    return form.cleaned_data


def schema_for(form_class: type[forms.Form], name: str, *, write_only: tuple[str, ...] = (),
               extra: dict | None = None) -> type[serializers.Serializer]:
    """A serializer that only describes the form's fields in the schema (validation stays the form's)."""
    fields = {field_name: _describe(field, write_only=field_name in write_only)
              for field_name, field in form_class.base_fields.items()}
    fields.update(extra or {})
    return type(name, (serializers.Serializer,), fields)


def _describe(field: forms.Field, *, write_only: bool) -> serializers.Field:
    common = {"required": field.required, "help_text": str(field.help_text or "") or None,
              "write_only": write_only}
    if isinstance(field, forms.BooleanField):
        return serializers.BooleanField(**{**common, "required": False})
    if isinstance(field, forms.MultiValueField):  # a size: an amount, and its unit in <name>_unit
        return serializers.FloatField(**{**common, "help_text": f"{field.label}: an amount in <name>_unit (default GiB)."})
    if isinstance(field, forms.ModelMultipleChoiceField):
        return serializers.ListField(child=serializers.IntegerField(), **common)
    if isinstance(field, forms.ModelChoiceField):
        return serializers.IntegerField(**common)
    if isinstance(field, forms.MultipleChoiceField):
        return serializers.ListField(child=serializers.CharField(), **common)
    static_choices = [value for value, _label in field.choices if value != ""] \
        if isinstance(field, forms.ChoiceField) and isinstance(field.choices, (list, tuple)) else []
    if static_choices:  # choices filled in per object (a VM's disks) are described as text
        return serializers.ChoiceField(choices=static_choices, **common)
    if isinstance(field, forms.IntegerField):
        return serializers.IntegerField(**common)
    if isinstance(field, (forms.FloatField, forms.DecimalField)):
        return serializers.FloatField(**common)
    if isinstance(field, forms.FileField):
        return serializers.CharField(**common)  # PEM text
    return serializers.CharField(max_length=getattr(field, "max_length", None), allow_blank=not field.required,
                                 **common)
