"""Sizes as the lab's Proxmox VE fake reads them for disk resizes and clone durations."""

import pytest

from castle_lab.pve_fake import drive_size, parse_size, resized

GIB = 1024 ** 3


@pytest.mark.parametrize('text, size', [
    ('20G', 20 * GIB), ('512M', 512 * 1024 ** 2), ('1T', 1024 * GIB), ('4K', 4096), ('1048576', 1048576),
    ('1.5G', int(1.5 * GIB)), (' 8G ', 8 * GIB),
])
def test_parse_size_reads_pve_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize('text', ['', 'G', '20g', '20GB', '+2G', '-1G', '2 G', None])
def test_parse_size_refuses_what_pve_refuses(text):
    with pytest.raises(ValueError, match='invalid size'):
        parse_size(text)


@pytest.mark.parametrize('request_, size', [
    ('+2G', 22 * GIB), ('+512M', 20 * GIB + 512 * 1024 ** 2), ('30G', 30 * GIB), ('10G', 10 * GIB),
    ('+0', 20 * GIB), (str(21 * GIB), 21 * GIB),
])
def test_resized_is_relative_with_a_plus_and_absolute_without(request_, size):
    assert resized(20 * GIB, request_) == size


@pytest.mark.parametrize('request_', ['', '++1G', '-1G', '1X'])
def test_resized_refuses_a_malformed_request(request_):
    with pytest.raises(ValueError):
        resized(GIB, request_)


def test_drive_size_reads_the_size_option():
    assert drive_size('local-lvm:vm-100-disk-0,iothread=1,size=32G') == 32 * GIB
    assert drive_size('local:iso/talos.iso,media=cdrom') == 0
    assert drive_size('local-lvm:vm-100-disk-0,size=junk') == 0
