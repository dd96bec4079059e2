"""The one size formatter: file sizes in decimal units, memory in binary units."""

from __future__ import annotations

import pytest

from assistant.library.sizes import format_bytes, format_params


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "?"),
        (0, "0 B"),
        (999, "999 B"),
        (50_000, "50 kB"),
        (219_000, "0.2 MB"),  # a tenth of a megabyte up reads in MB
        (5_300_000, "5.3 MB"),
        (98_400_000, "98 MB"),
        (500_000_000, "500 MB"),  # GB only from 1 GB
        (999_999_999, "1.00 GB"),  # never '1,000 MB'
        (4_920_000_000, "4.92 GB"),
    ],
)
def test_file_sizes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (90 << 20, "90 MiB"),
        (int(0.43 * (1 << 30)), "0.43 GiB"),  # from a tenth of a GiB, as fit messages read
        (int(5.5 * (1 << 20)), "5.5 MiB"),
        (3 << 30, "3.00 GiB"),
    ],
)
def test_memory_sizes(n, text):
    assert format_bytes(n, binary=True) == text


def test_parameter_counts():
    assert [format_params(n) for n in (134_515_008, 1_700_000_000, 12_000)] == [
        "135M",
        "1.7B",
        "12K",
    ]
