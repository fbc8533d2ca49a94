"""Waits on a VM: a lock held by a running task, and the guest agent's addresses; on the client's clock."""

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import ProxmoxError
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox_vm_guest import wait_for_ip, wait_unlocked

VM = {'vmid': 101, 'name': 'w-1', 'node': 'pve1', 'status': 'stopped', 'lock': 'clone'}


class Client(object):
    """Answers GETs from a script (a value, or an exception to raise), with a clock that moves only on sleep."""

    def __init__(self, answers, listed=()):
        self.answers = list(answers)
        self.listed = list(listed)
        self.asked = []
        self.slept = []
        self.now = 0.0
        self.retries = 4

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds

    def get(self, path):
        self.asked.append((path, self.retries))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def vms(self):
        return self.listed


def test_a_lock_is_waited_out_with_growing_pauses():
    client = Client([{'status': 'stopped', 'lock': 'clone'}, {'status': 'stopped', 'lock': 'clone'},
                     {'status': 'stopped'}])
    assert wait_unlocked(client, dict(VM), 60) == dict(VM, lock=None)
    assert client.slept == [0.2, 0.3]


def test_a_migration_that_finished_meanwhile_finds_the_vm_on_its_new_node():
    gone = ProxmoxError("GET nodes/pve1/qemu/101/status/current: 500 Configuration file "
                        "'nodes/pve1/qemu-server/101.conf' does not exist")
    client = Client([gone], listed=[{'vmid': 101, 'node': 'pve2', 'status': 'stopped'}])
    assert wait_unlocked(client, dict(VM, lock='migrate'), 60) == dict(VM, node='pve2', lock=None)


def test_a_lock_held_past_the_deadline_names_the_vm_and_the_lock():
    client = Client([{'status': 'stopped', 'lock': 'backup'}] * 20)
    with pytest.raises(ProxmoxError, match=r'^VM 101 is still locked \(backup\) after 3s$'):
        wait_unlocked(client, dict(VM, lock='backup'), 3)
    assert client.now == 3


def test_the_agent_is_asked_without_retries_until_it_reports_an_address():
    not_running = ProxmoxError('GET .../agent/network-get-interfaces: 500 QEMU guest agent is not running')
    client = Client([not_running, {'result': []}, {'result': [
        {'name': 'eth0', 'ip-addresses': [{'ip-address': '10.0.0.5', 'ip-address-type': 'ipv4'}]}]}])
    assert wait_for_ip(client, VM, 60) == ['10.0.0.5']
    assert [retries for _path, retries in client.asked] == [0, 0, 0] and client.retries == 4
    assert client.slept == [0.5, 0.75]
