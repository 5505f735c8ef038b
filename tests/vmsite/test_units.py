"""Sizes read the same everywhere: the pages' binary_size filter and the browser's units.js give the
same text for the same number, in binary units (never Django's "GB" for GiB)."""
import json
import subprocess
from pathlib import Path

import pytest
from django.template import Context, Template

from vmsite.units import binary_size

UNITS_JS = Path(__file__).resolve().parents[2] / "static" / "vmsite" / "units.js"
SAMPLES = [0, 1, 1023, 1024, 1280, 1536, 10752, 1088, 1126, 10 * 1024 - 1, 10 * 1024, 5 * 2**20, 1000**3, 2**30, 10 * 2**30 + 1, 123 * 2**30,
           2**40, 3 * 2**50, 2**70]


@pytest.mark.parametrize(("value", "unit", "text"), [
    (0, "B", "0 B"), (1023, "B", "1023 B"), (1024, "B", "1.0 KiB"), (1536, "B", "1.5 KiB"),
    (1000**3, "B", "954 MiB"), (2**30, "B", "1.0 GiB"), (123 * 2**30, "B", "123 GiB"), (2**40, "B", "1.0 TiB"),
    (4 * 2**20, "KiB", "4.0 GiB"), (None, "B", ""),
])
def test_it_writes_sizes_in_binary_units(value, unit, text):
    assert binary_size(value, unit) == text


def test_it_gives_two_decimals_when_a_message_compares_sizes():
    assert binary_size(11 * 2**30, decimals=2) == "11.00 GiB" and binary_size(512, decimals=2) == "512 B"


def test_the_filter_is_on_every_template_and_takes_the_input_unit():
    text = Template('{{ size|binary_size }} / {{ kib|binary_size:"KiB" }} / {{ none|binary_size }}').render(
        Context({"size": 3 * 2**30, "kib": 2 * 2**20, "none": None}))
    assert text == "3.0 GiB / 2.0 GiB / "


def test_the_browser_helper_gives_the_same_text_as_the_pages():
    script = (f"require({json.dumps(str(UNITS_JS))});"
              f"console.log(JSON.stringify({json.dumps(SAMPLES)}.map(globalThis.vmsiteUnits.bytes)));")
    answer = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(answer.stdout) == [binary_size(value) for value in SAMPLES]


def test_a_graph_axis_of_sizes_has_one_unit_and_the_decimals_its_step_needs():
    cases = [([49 * 2**20, 49.5 * 2**20, 50 * 2**20], 0.5 * 2**20, ""), ([0, 50, 100], 50, "/s"),
             ([0, 512 * 1024, 1024 * 1024, 1536 * 1024], 512 * 1024, "/s"), ([None, 2 * 2**30], 2**30, "")]
    script = (f"require({json.dumps(str(UNITS_JS))});"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(c => globalThis.vmsiteUnits.byteTicks(...c))));")
    answer = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(answer.stdout) == [["49.0 MiB", "49.5 MiB", "50.0 MiB"], ["0 B/s", "50 B/s", "100 B/s"],
                                         ["0.0 MiB/s", "0.5 MiB/s", "1.0 MiB/s", "1.5 MiB/s"], ["", "2 GiB"]]


@pytest.mark.integration  # the host page asks Redis whether the host is watched
@pytest.mark.django_db
def test_the_storage_and_host_pages_write_binary_units(admin_client):
    import re

    from django.urls import reverse
    from django.utils import timezone

    from hosts.models import Host
    from storage.models import StoragePool

    host = Host.objects.create(name="units-host", transport="test", address="default", memory_kib=8 * 2**20)
    pool = StoragePool.objects.create(host=host, uuid="6695eb01-f6a4-8304-79aa-97f2502e7777", name="units-pool",
                                      pool_type="dir", active=True, capacity=100 * 2**30, allocation=25 * 2**30,
                                      available=75 * 2**30, synced_at=timezone.now())
    for url in (reverse("storage:list"), reverse("storage:pool", args=[pool.pk]), reverse("hosts:detail", args=[host.pk])):
        page = admin_client.get(url).content.decode()
        assert not re.search(r"\d (KB|MB|GB|TB)\b", page), url
    assert "25 GiB" in admin_client.get(reverse("storage:list")).content.decode()
    assert "8.0 GiB" in admin_client.get(reverse("hosts:detail", args=[host.pk])).content.decode()
