"""proxmox_vm_info against a fake Proxmox VE: filters, configs, and never a change."""

import proxmoxer
import pytest

import fake_pve


@pytest.fixture
def pve(monkeypatch):
    cluster = fake_pve.install(monkeypatch)
    cluster.add_vm(9000, 'talos-template', template=1, tags='talos;template')
    cluster.add_vm(101, 'talos-cp-1', status='running', tags='Talos;controlplane', cores='4')
    cluster.add_vm(102, 'db-1', node='pve2', cores='2')
    return cluster


@pytest.mark.parametrize('check_mode', [False, True])
def test_a_tag_selects_vms_sorted_by_vmid_and_nothing_changes(run_module, pve, check_mode):
    result = run_module('proxmox_vm_info', check_mode=check_mode, tag='talos', **fake_pve.LOGIN)
    assert not result.failed and not result.changed
    assert [(vm['vmid'], vm['name'], vm['template']) for vm in result['vms']] == [
        (101, 'talos-cp-1', False), (9000, 'talos-template', True)]
    assert result['vms'][0]['tags'] == ['controlplane', 'talos']
    assert pve.writes() == []


def test_config_is_read_per_vm_without_its_digest(run_module, pve):
    result = run_module('proxmox_vm_info', node='pve2', include_config=True, **fake_pve.LOGIN)
    assert result['vms'] == [{'vmid': 102, 'name': 'db-1', 'node': 'pve2', 'status': 'stopped', 'template': False,
                              'tags': [], 'lock': None, 'config': {'name': 'db-1', 'cores': '2'}}]


def test_filters_combine_and_may_match_nothing(run_module, pve):
    assert run_module('proxmox_vm_info', name='talos-cp-1', vmid=101, **fake_pve.LOGIN)['vms'][0]['vmid'] == 101
    assert run_module('proxmox_vm_info', name='talos-cp-1', node='pve2', **fake_pve.LOGIN)['vms'] == []


def test_a_refused_login_fails_naming_the_user_and_host(run_module, pve):
    result = run_module('proxmox_vm_info', api_host='pve.test', api_user='root@pam', api_password='wrong')
    assert result.failed
    assert result.msg.startswith('login to pve.test as root@pam failed')


def test_a_token_secret_without_its_id_is_refused_before_any_request(run_module, pve):
    result = run_module('proxmox_vm_info', api_host='pve.test', api_user='root@pam', api_token_secret='s')
    assert result.failed and 'api_token_id' in result.msg
    assert pve.requests == []


@pytest.mark.parametrize('retries, failed', [({'retries': 2}, False), ({'api_retries': 1}, True)])
def test_a_passing_5xx_is_retried_within_the_budget_old_name_or_new(run_module, pve, retries, failed):
    pve.fail('get', 'cluster/resources', proxmoxer.ResourceException(503, 'Service Unavailable', 'backend busy'), 2)
    result = run_module('proxmox_vm_info', **dict(fake_pve.LOGIN, **retries))
    assert result.failed is failed
    if failed:
        assert result.msg == 'GET cluster/resources failed after 2 tries: backend busy'
    else:
        assert len(result['vms']) == 3
