"""System extensions decide what a Talos node runs. A stock Talos ISO has none, so a VM booting it runs no guest
agent and reports no address, while one booting the Image Factory ISO of a schematic with
siderolabs/qemu-guest-agent does. playbooks/talos.yml checks the cluster's extensions before it makes any VM."""

import json
import subprocess
import uuid

import pytest
from castle_lab.control import ProxmoxControl
from castle_lab.talos import factory
from proxmoxer import ResourceException
from talos_helpers import ISO, STOCK_ISO, agent_address, talos_vms, until

from conftest import VENV_BIN, remove_named

pytestmark = pytest.mark.lab


def boot(pve, name, iso):
    vmid = int(pve.cluster.nextid.get())
    pve.nodes('pve1').qemu(9000).clone.post(newid=vmid, name=name, full=1)
    pve.nodes('pve1').qemu(vmid).config.post(ide2=iso, boot='order=scsi0;ide2')
    pve.nodes('pve1').qemu(vmid).status.start.post()
    return vmid


def test_only_a_node_with_the_guest_agent_extension_reports_its_address(env, pve):
    suffix = uuid.uuid4().hex[:6]
    names = {'stock': 'ext-stock-' + suffix, 'factory': 'ext-factory-' + suffix}
    control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    try:
        stock, made = boot(pve, names['stock'], STOCK_ISO), boot(pve, names['factory'], ISO)
        factory_address = until(lambda: agent_address(pve, made), 'the guest agent of the factory ISO node')
        stock_node = until(lambda: next((n for n in control.talos_nodes() if n['vmid'] == stock
                                         and n['stage'] == 'maintenance'), None), 'the stock ISO node in maintenance')
        assert stock_node['address'] != factory_address
        # The stock node runs (its Talos API answers in maintenance mode), but nothing answers for its agent.
        assert agent_address(pve, stock) is None
        with pytest.raises(ResourceException, match='QEMU guest agent is not running'):
            pve.nodes('pve1').qemu(stock).agent('network-get-interfaces').get()
    finally:
        remove_named(pve, *names.values())
    # qemu-server's destroy_vm frees only the VM's own disks, never the ISO in its CD-ROM drive.
    listed = {item['volid'] for item in pve.nodes('pve1').storage('local').content.get(content='iso')}
    assert {ISO.split(',', maxsplit=1)[0], STOCK_ISO.split(',', maxsplit=1)[0]} <= listed


def test_a_schematic_without_the_guest_agent_fails_before_any_vm_is_made(lab, env):
    control = ProxmoxControl(env['CASTLE_LAB_PROXMOX_CONTROL'])
    talos = {'name': 'noagent', 'node': 'pve1', 'template': 'talos-template', 'version': 'v1.11.6',
             'extensions': ['siderolabs/iscsi-tools', 'siderolabs/util-linux-tools'],
             'factory_url': env['CASTLE_LAB_FACTORY_URL'], 'factory_ca_path': env['PROXMOX_CA'],
             'kubeconfig_path': str(lab.dir / 'noagent' / 'kubeconfig'),
             'talosconfig_path': str(lab.dir / 'noagent' / 'talosconfig'),
             'nodes': [{'name': 'noagent-cp-1', 'role': 'controlplane'}]}
    control.reset_requests()
    run = lab.run('ansible-playbook', '-i', str(lab.inventory / 'hosts.yml'), 'playbooks/talos.yml',
                  '-e', json.dumps({'castle_talos': talos}), env=env, check=False, timeout=300)
    assert run.returncode != 0
    assert 'lack siderolabs/qemu-guest-agent' in run.stdout, run.stdout
    assert 'No VM was created' in run.stdout
    assert control.requests()['requests'] == []
    assert [vm for vm in control.vms() if vm['name'] == 'noagent-cp-1'] == []


def test_an_installed_node_runs_the_extensions_of_its_installer_image(env, pve, tmp_path):
    """Both nodes boot the factory ISO (guest agent on); the control plane installs the factory's installer of
    the same schematic and keeps its agent, the worker installs the stock installer and loses it."""
    sid = factory.schematic_id(factory.marshal(factory.default_schematic()))
    host = env['CASTLE_LAB_FACTORY_URL'].split('://', 1)[1]
    talos_env = dict(env, TALOSCONFIG=str(tmp_path / 'talosconfig'), HOME=str(tmp_path),
                     PATH='{0}:{1}'.format(VENV_BIN, env['PATH']))

    def talosctl(*args):
        result = subprocess.run(['talosctl', *args], env=talos_env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        return result.stdout

    with talos_vms(pve, 'ext-installed') as machines:
        cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
        talosctl('gen', 'secrets', '-o', 'secrets.yaml')
        talosctl('gen', 'config', 'ext', 'https://{0}:6443'.format(cp), '--with-secrets', 'secrets.yaml',
                 '--install-image', '{0}/metal-installer/{1}:v1.11.6'.format(host, sid),
                 '--config-patch-worker', json.dumps({'machine': {'install': {
                     'image': 'ghcr.io/siderolabs/installer:v1.11.6'}}}),
                 '--output-types', 'controlplane,worker,talosconfig', '-o', '.')
        talosctl('apply-config', '--insecure', '-n', cp, '--file', 'controlplane.yaml')
        talosctl('apply-config', '--insecure', '-n', worker, '--file', 'worker.yaml')
        until(lambda: 'qemu-guest-agent' in talosctl('get', 'extensions', '-n', cp, '-e', cp),
              'the control plane installed with the factory installer')
        listed = talosctl('get', 'extensions', '-n', cp, '-e', cp)
        for name in ('iscsi-tools', 'qemu-guest-agent', 'util-linux-tools', sid):
            assert name in listed, listed
        assert agent_address(pve, machines['vmids']['cp']) == cp
        until(lambda: agent_address(pve, machines['vmids']['worker']) is None, 'the worker losing its guest agent')
        assert 'qemu-guest-agent' not in talosctl('get', 'extensions', '-n', worker, '-e', cp)
