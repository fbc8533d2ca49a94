"""talos_reset without a lab: a node is wiped only with a gate token that clears its hostname (issued, not expired,
not used, fleet file unchanged), each use recorded in the journal; check mode and a node in maintenance consume
nothing; the wait for the node to leave its config is bounded."""

import datetime

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import gate

from fake_talos import DOWN, MAINTENANCE, FakeTalosctl, config_text

NODE = '10.0.40.22'


@pytest.fixture
def fleet(tmp_path):
    """(fleet file, journal, issue(cleared, ttl, now) -> token)."""
    path = tmp_path / 'castle.fleet.yml'
    path.write_text('clusters: []\n')
    journal = str(tmp_path / 'phoenix-journal.md')

    def issue(cleared=('w-2',), ttl=1800, now=None):
        return gate.issue(journal, str(path), cleared[0], 'node', list(cleared), ttl, 'gate passed', now=now)[0]
    return path, journal, issue


def node(monkeypatch, state='configured', resets=True):
    fake = FakeTalosctl().node(NODE, state=state, config=config_text('w-2', 'worker'), resets=resets)
    return fake.install(monkeypatch, 'talos_reset')


def uses(journal):
    return [r for r in gate.records(journal) if r['event'] == 'use']


def reset(run_module, journal, token, **args):
    return run_module('talos_reset', binary_path='/usr/bin/talosctl', nodes=[NODE], gate_token=token,
                      gate_journal=journal, **args)


def test_a_token_clearing_the_node_resets_it_once(run_module, monkeypatch, fleet):
    dummy, journal, issue = fleet
    fake = node(monkeypatch)
    token = issue()
    result = reset(run_module, journal, token, diff=True)
    assert result.changed and result['hostname'] == 'w-2' and result['state_after'] == 'maintenance'
    assert result['diff']['after'] == dict(node=NODE, state='maintenance')
    (call,) = fake.ran('reset')
    assert call.argv[2:5] == ['--graceful=true', '--reboot=true', '--wait=false'] and call.nodes == [NODE]
    assert [(u['action'], u['name']) for u in uses(journal)] == [('reset', 'w-2')]
    assert token not in open(journal).read()
    fake.node(NODE, config=config_text('w-2', 'worker'))
    again = reset(run_module, journal, token)
    assert again.failed and 'was already used to reset w-2' in again.msg and len(fake.ran('reset')) == 1


def test_without_a_token_nothing_is_asked_or_changed(run_module, monkeypatch, fleet):
    dummy, journal, dummy2 = fleet
    fake = node(monkeypatch)
    result = reset(run_module, journal, None)
    assert result.failed and result.msg.startswith('reset 10.0.40.22 destroys it: give gate_token and gate_journal')
    assert not fake.calls


@pytest.mark.parametrize('make, message', [
    (lambda issue: issue(cleared=('w-1',)), 'the gate token {id} clears w-1 (target w-1), not w-2'),
    (lambda issue: issue(ttl=60, now=gate.utcnow() - datetime.timedelta(hours=2)), 'the gate token {id} expired at'),
    (lambda issue: 'not-a-token', 'gate_token is not a token the gate issued in'),
])
def test_a_token_for_another_node_an_expired_or_unknown_one_is_refused(run_module, monkeypatch, fleet, make, message):
    dummy, journal, issue = fleet
    fake = node(monkeypatch)
    token = make(issue)
    result = reset(run_module, journal, token)
    assert result.failed and message.format(id=gate.digest(token)[:12]) in result.msg
    assert result.msg.endswith('nothing was changed')
    assert not fake.ran('reset') and uses(journal) == []


def test_a_changed_fleet_file_voids_the_token(run_module, monkeypatch, fleet):
    path, journal, issue = fleet
    fake = node(monkeypatch)
    token = issue()
    path.write_text('clusters: [{name: other}]\n')
    result = reset(run_module, journal, token)
    assert result.failed and 'changed since the gate token' in result.msg and not fake.ran('reset')


def test_check_mode_needs_no_token_and_consumes_none(run_module, monkeypatch, fleet):
    dummy, journal, issue = fleet
    fake = node(monkeypatch)
    assert reset(run_module, journal, None, check_mode=True).changed
    token = issue()
    assert reset(run_module, journal, token, check_mode=True).changed
    assert not fake.ran('reset') and uses(journal) == []
    assert reset(run_module, journal, 'not-a-token', check_mode=True).failed
    assert reset(run_module, journal, token).changed


def test_a_node_in_maintenance_has_nothing_to_reset(run_module, monkeypatch, fleet):
    dummy, journal, issue = fleet
    fake = node(monkeypatch, state=MAINTENANCE)
    result = reset(run_module, journal, issue())
    assert not result.changed and result['node_state'] == 'maintenance'
    assert not fake.ran('reset') and uses(journal) == []


def test_an_unreachable_node_is_named(run_module, monkeypatch, fleet):
    dummy, journal, issue = fleet
    node(monkeypatch, state=DOWN)
    result = reset(run_module, journal, issue())
    assert result.failed and result.msg.startswith('node 10.0.40.22 cannot be reached to reset it: ')
    assert uses(journal) == []


def test_the_wait_for_the_node_to_leave_its_config_is_bounded(run_module, monkeypatch, fleet):
    dummy, journal, issue = fleet
    fake = node(monkeypatch, resets=False)
    result = reset(run_module, journal, issue(), wait_timeout=6, graceful=False, wipe_mode='system-disk')
    assert result.failed and result.msg == 'node 10.0.40.22 still runs its config 6s after the reset'
    assert sum(fake.slept) == 6
    call = fake.ran('reset')[0]
    assert '--graceful=false' in call.argv and call.flag('--wipe-mode') == 'system-disk'


def test_wait_false_returns_at_once(run_module, monkeypatch, fleet):
    dummy, journal, issue = fleet
    fake = node(monkeypatch, resets=False)
    result = reset(run_module, journal, issue(), wait=False)
    assert result.changed and 'state_after' not in result and fake.slept == []
