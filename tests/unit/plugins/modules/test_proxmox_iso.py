"""proxmox_iso against a fake Proxmox VE: a download only where the file is missing, check mode, diff, removal."""

import pytest

import fake_pve

URL = 'https://factory.talos.dev/image/3765/v1.11.6/metal-amd64.iso'
VOLID = 'local:iso/metal-amd64.iso'


@pytest.fixture
def pve(monkeypatch):
    cluster = fake_pve.install(monkeypatch)
    cluster.content[('pve1', 'local')] = [{'volid': VOLID, 'content': 'iso', 'size': 5}]
    return cluster


def test_the_file_is_downloaded_only_where_it_is_missing(run_module, pve):
    result = run_module('proxmox_iso', diff=True, nodes=['pve1', 'pve2'], url=URL, checksum='ab12',
                        checksum_algorithm='sha256', **fake_pve.LOGIN)
    assert not result.failed and result.changed
    assert result['volid'] == VOLID
    assert result['nodes'] == {'pve1': {'volid': VOLID, 'changed': False, 'size': 5},
                               'pve2': {'volid': VOLID, 'changed': True, 'size': 104857600}}
    assert result['diff'] == {'before': {VOLID: {'pve1': 'present', 'pve2': 'absent'}},
                              'after': {VOLID: {'pve1': 'present', 'pve2': 'present'}}}
    (download,) = pve.made('post')
    assert download == ('nodes/pve2/storage/local/download-url', {
        'url': URL, 'content': 'iso', 'filename': 'metal-amd64.iso', 'verify-certificates': 1,
        'checksum': 'ab12', 'checksum-algorithm': 'sha256'})
    again = run_module('proxmox_iso', nodes=['pve1', 'pve2'], url=URL, **fake_pve.LOGIN)
    assert not again.changed and len(pve.made('post')) == 1


def test_check_mode_reports_the_download_without_making_it(run_module, pve):
    result = run_module('proxmox_iso', check_mode=True, node='pve2', url=URL, wait_timeout=5, **fake_pve.LOGIN)
    assert result.changed and result['nodes']['pve2'] == {'volid': VOLID, 'changed': True, 'size': None}
    assert pve.writes() == []


def test_absent_removes_the_volume_where_it_is(run_module, pve):
    result = run_module('proxmox_iso', nodes=['pve1', 'pve2'], filename='metal-amd64.iso', state='absent',
                        timeout=60, **fake_pve.LOGIN)
    assert result.changed
    assert pve.writes() == [('delete', 'nodes/pve1/storage/local/content/' + VOLID)]
    assert pve.content[('pve1', 'local')] == []


@pytest.mark.parametrize('args, message', [
    ({'node': 'pve1', 'url': 'https://example.test/talos.raw.xz'},
     "filename 'talos.raw.xz': a file of content iso must end in .iso or .img"),
    ({'node': 'pve1', 'url': 'ftp://example.test/a.iso'}, "url 'ftp://example.test/a.iso' must be an http or https URL"),
    ({'node': 'pve1', 'filename': 'a.iso'}, 'url is required with state present'),
    ({'nodes': [], 'url': URL}, 'nodes is empty: give at least one node'),
    ({'node': 'pve1', 'nodes': ['pve2'], 'url': URL}, 'parameters are mutually exclusive: node|nodes'),
])
def test_bad_input_is_refused_naming_it_before_any_request(run_module, pve, args, message):
    result = run_module('proxmox_iso', **dict(fake_pve.LOGIN, **args))
    assert result.failed and message in result.msg
    assert pve.requests == []
