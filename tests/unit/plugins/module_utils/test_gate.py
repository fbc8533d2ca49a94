"""The phoenix gate's token: issued for exactly the names it clears, checked and used once by the modules that
destroy, recorded in the journal."""

import datetime

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import fleet, gate

NOW = datetime.datetime(2026, 12, 4, 14, 0, tzinfo=datetime.timezone.utc)
FLEET = {'clusters': [{'name': 'castle', 'nodes': [{'name': 'cp-1'}, {'name': 'w-1'}]}],
         'machines': [{'name': 'pve-old'}]}


@pytest.fixture
def paths(tmp_path):
    fleet = tmp_path / 'lab.fleet.yml'
    fleet.write_text('fleet: {}\n')
    return fleet, tmp_path / 'phoenix-journal.md'


def issued(paths, cleared=('cp-1', 'w-1'), ttl=600):
    fleet, journal = paths
    token, record, line = gate.issue(str(journal), str(fleet), 'castle', 'cluster', list(cleared), ttl, 'gate passed',
                                     NOW)
    return token, record, line


def later(seconds):
    return NOW + datetime.timedelta(seconds=seconds)


def test_places_kinds_and_the_names_a_wipe_destroys():
    assert [fleet.place_kind(FLEET, n) for n in ('castle', 'w-1', 'pve-old', 'nope')] == \
        ['cluster', 'node', 'machine', None]
    assert fleet.wiped_with(FLEET, 'castle') == ['cp-1', 'w-1']
    assert fleet.wiped_with(FLEET, 'w-1') == ['w-1']


def test_the_journal_records_the_decision_and_a_digest_never_the_token(paths):
    token, record, line = issued(paths)
    text = paths[1].read_text()
    assert text.startswith(gate.HEADER) and line in text
    assert token not in text and record['sha256'] in text
    assert 'castle (cluster)' in line and 'clears cp-1, w-1 until 2026-12-04T14:10:00Z' in line
    assert record['id'] == record['sha256'][:12]
    assert oct(paths[1].stat().st_mode & 0o777) == '0o640'


def test_a_token_is_used_once_per_name_and_action(paths):
    token = issued(paths)[0]
    journal = str(paths[1])
    assert gate.consume(journal, token, ['w-1'], 'reset', later(60))['target'] == 'castle'
    with pytest.raises(gate.GateError, match='already used to reset w-1'):
        gate.consume(journal, token, ['w-1'], 'reset', later(61))
    with pytest.raises(gate.GateError, match='already used to reset w-1'):
        gate.check(journal, token, ['w-1'], 'reset', later(61))
    # The same node's VM is another action; the other node is another name.
    gate.consume(journal, token, ['w-1'], 'destroy', later(62))
    gate.consume(journal, token, ['cp-1'], 'reset', later(63))
    uses = [r for r in gate.records(journal) if r['event'] == 'use']
    assert [(u['action'], u['name']) for u in uses] == [('reset', 'w-1'), ('destroy', 'w-1'), ('reset', 'cp-1')]


def test_check_does_not_use_the_token(paths):
    token = issued(paths)[0]
    gate.check(str(paths[1]), token, ['w-1'], 'reset', later(1))
    gate.consume(str(paths[1]), token, ['w-1'], 'reset', later(2))


@pytest.mark.parametrize('token, names, when, message', [
    (None, ['w-1'], 1, 'give gate_token and gate_journal'),
    ('', ['w-1'], 1, 'give gate_token and gate_journal'),
    ('made-up', ['w-1'], 1, 'not a token the gate issued'),
    ('good', ['w-9'], 1, 'clears cp-1, w-1 \\(target castle\\), not w-9'),
    ('good', ['w-1', 'pve-old'], 1, 'not pve-old'),
    ('good', ['w-1'], 600, 'expired at 2026-12-04T14:10:00Z'),
])
def test_refusals_name_why_and_write_nothing(paths, token, names, when, message):
    good = issued(paths)[0]
    before = paths[1].read_text()
    with pytest.raises(gate.GateError, match=message):
        gate.consume(str(paths[1]), good if token == 'good' else token, names, 'reset', later(when))
    assert paths[1].read_text() == before


def test_a_fleet_file_changed_since_the_gate_voids_the_token(paths):
    token = issued(paths)[0]
    paths[0].write_text('fleet: {changed: true}\n')
    with pytest.raises(gate.GateError, match='changed since the gate token'):
        gate.consume(str(paths[1]), token, ['w-1'], 'reset', later(1))


def test_a_token_of_another_target_does_not_clear_this_one(paths):
    other = issued(paths, cleared=['pve-old'])[0]
    issued(paths)
    with pytest.raises(gate.GateError, match='clears pve-old'):
        gate.consume(str(paths[1]), other, ['w-1'], 'reset', later(1))


def test_lines_edited_by_hand_are_not_records(paths):
    token = issued(paths)[0]
    with open(paths[1], 'a') as handle:
        handle.write('- a note <!-- castle-gate {not json} -->\n- another note\n')
    assert len(gate.records(str(paths[1]))) == 1
    gate.consume(str(paths[1]), token, ['w-1'], 'reset', later(1))


def test_no_journal_yet_means_no_token(paths):
    assert gate.records(str(paths[1])) == []
    with pytest.raises(gate.GateError, match='not a token the gate issued'):
        gate.check(str(paths[1]), 'x', ['w-1'], 'reset', NOW)


def test_covers_checks_every_name_before_any_is_used(paths):
    token = issued(paths)[0]
    journal = str(paths[1])
    gate.consume(journal, token, ['w-1'], 'destroy', later(1))
    assert gate.covers(journal, token, ['w-1', 'cp-1'], later(2))['target'] == 'castle'
    with pytest.raises(gate.GateError, match='not pve-old'):
        gate.covers(journal, token, ['cp-1', 'pve-old'], later(2))
    with pytest.raises(gate.GateError, match='expired'):
        gate.covers(journal, token, ['cp-1'], later(601))
