"""fleet_drain_plan run in-process: the waves leaving a machine in order, what blocks the first, errors naming
the bad input, and nothing changed, in check mode or not."""

import pytest
import yaml


def fleet():
    return {
        'machines': [{'name': 'pve-old', 'role': 'frozen', 'state': 'draining'},
                     {'name': 'pve-new', 'role': 'production'}],
        'workloads': [
            {'name': 'app', 'current_host': 'pve-old', 'target_host': 'pve-new', 'owner': 'web', 'wave': 1,
             'depends_on': ['vault']},
            {'name': 'vault', 'current_host': 'pve-old', 'target_host': 'pve-new', 'owner': 'platform', 'wave': 2},
            {'name': 'dns', 'current_host': 'pve-old', 'target_host': 'pve-old', 'owner': 'platform', 'wave': 1}]}


@pytest.mark.parametrize('check_mode', [False, True])
def test_the_waves_leave_in_order_and_the_first_is_ready(run_module, tmp_path, check_mode):
    src = tmp_path / 'site.fleet.yml'
    src.write_text(yaml.safe_dump({'plugin': 'ephemeral.castle.fleet', 'fleet': fleet()}))
    result = run_module('fleet_drain_plan', check_mode=check_mode, src=str(src), machine='pve-old')
    assert not result.failed and not result.changed
    assert [(w['wave'], w['workloads']) for w in result['waves']] == [(1, ['app']), (2, ['vault'])]
    assert result['waves'][1]['blocked_by'] == [{'workload': 'vault', 'reason': 'app (wave 1) depends on it and has '
                                                 'not moved yet', 'waits_for': 'app'}]
    assert result['staying'] == ['dns'] and result['workloads'] == 2
    assert result['machine'] == 'pve-old' and result['ready'] == 1


def test_a_blocked_first_wave_is_not_ready(run_module):
    data = fleet()
    data['workloads'][0]['target_host'] = 'pve-old'
    data['workloads'][2]['target_host'] = None
    result = run_module('fleet_drain_plan', fleet=data, machine='pve-old')
    assert result['waves'][0]['blocked_by'] == [{'workload': 'dns', 'reason': 'no target host'}]
    assert result['ready'] is None


def test_nothing_to_move_is_not_ready_either(run_module):
    result = run_module('fleet_drain_plan', fleet=fleet(), machine='pve-new')
    assert not result.failed and result['waves'] == [] and result['workloads'] == 0 and result['ready'] is None


def test_an_unknown_machine_fails_naming_it(run_module):
    result = run_module('fleet_drain_plan', fleet=fleet(), machine='ghost')
    assert result.failed
    assert result.msg == "machine: 'ghost' is not a machine, cluster or cluster node of the fleet"


def test_an_invalid_fleet_fails_naming_the_key_path(run_module):
    data = fleet()
    data['workloads'][1]['wave'] = 'last'
    result = run_module('fleet_drain_plan', fleet=data, machine='pve-old')
    assert result.failed and result['errors'] == ["fleet.workloads[1].wave: expected an integer, got 'last'"]


def test_the_machine_is_required(run_module):
    result = run_module('fleet_drain_plan', fleet=fleet())
    assert result.failed and result.msg == 'missing required arguments: machine'
