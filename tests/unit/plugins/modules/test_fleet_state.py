"""fleet_state run in-process on a fleet file: only the state lines change (comments and layout stay), the
file keeps its mode, check mode and diff, idempotence, and bad edits change nothing and name the bad input."""

import os

import pytest

from ansible_collections.ephemeral.castle.plugins.modules import fleet_state

FLEET = """\
plugin: ephemeral.castle.fleet
fleet:
  machines:
    # Emptied, then reborn as castle-2.
    - name: pve-old
      role: frozen
      state: draining   # since November
      successor: castle-2
    - {name: castle-2, role: production, state: planned}
    - name: laptop
      role: workstation
"""


@pytest.fixture
def src(tmp_path):
    path = tmp_path / 'site.fleet.yml'
    path.write_text(FLEET, encoding='utf-8')
    path.chmod(0o640)
    return path


def test_only_the_named_states_change_and_the_file_keeps_its_comments_and_mode(run_module, src):
    states = {'pve-old': 'wiped', 'castle-2': 'active', 'laptop': 'active'}
    result = run_module('fleet_state', src=str(src), states=states)
    assert not result.failed and result.changed
    assert result['changed_machines'] == {'pve-old': {'before': 'draining', 'after': 'wiped'},
                                          'castle-2': {'before': 'planned', 'after': 'active'}}
    assert src.read_text(encoding='utf-8') == FLEET.replace('state: draining', 'state: wiped   ').replace(
        'state: planned', 'state: active')
    assert os.stat(src).st_mode & 0o777 == 0o640
    again = run_module('fleet_state', src=str(src), states={'pve-old': 'wiped', 'castle-2': 'active'})
    assert not again.changed and again['changed_machines'] == {}


def test_a_machine_without_a_state_line_gets_one(run_module, src):
    result = run_module('fleet_state', src=str(src), states={'laptop': 'drained'})
    assert result['changed_machines'] == {'laptop': {'before': 'active', 'after': 'drained'}}
    assert src.read_text(encoding='utf-8').endswith('    - name: laptop\n      role: workstation\n      state: drained\n')


def test_check_mode_with_diff_changes_nothing_and_shows_the_edit(run_module, src):
    result = run_module('fleet_state', check_mode=True, diff=True, src=str(src), states={'castle-2': 'active'})
    assert result.changed and result['changed_machines'] == {'castle-2': {'before': 'planned', 'after': 'active'}}
    assert src.read_text(encoding='utf-8') == FLEET
    assert result['diff'] == {'before': FLEET, 'after': FLEET.replace('state: planned', 'state: active'),
                              'before_header': str(src), 'after_header': str(src)}


def test_no_diff_when_nothing_changes(run_module, src):
    result = run_module('fleet_state', diff=True, src=str(src), states={'castle-2': 'planned'})
    assert not result.changed and 'diff' not in result


@pytest.mark.parametrize('states, error', [
    ({'ghost': 'wiped', 'pve-old': 'wiped'}, 'states: ghost is not a machine of the fleet (machines: castle-2, laptop, pve-old)'),
    ({'pve-old': 'gone'}, "states: expected one of active, draining, drained, wiped, planned, got pve-old: 'gone'"),
])
def test_a_bad_edit_changes_nothing_and_names_the_input(run_module, src, states, error):
    result = run_module('fleet_state', src=str(src), states=states)
    assert result.failed and result['errors'] == [error]
    assert result.msg == '{0}: 1 error(s) in the fleet:\n  {1}'.format(src, error)
    assert src.read_text(encoding='utf-8') == FLEET


def test_a_missing_fleet_file_fails_naming_it(run_module, tmp_path):
    missing = tmp_path / 'none.fleet.yml'
    result = run_module('fleet_state', src=str(missing), states={'pve-old': 'wiped'})
    assert result.failed and result.msg == 'cannot read the fleet file {0}: No such file or directory'.format(missing)


def test_without_ruamel_the_module_fails_naming_it(run_module, src, monkeypatch):
    monkeypatch.setattr(fleet_state, 'HAS_RUAMEL', False)
    result = run_module('fleet_state', src=str(src), states={'pve-old': 'wiped'})
    assert result.failed and 'ruamel.yaml' in result.msg
    assert src.read_text(encoding='utf-8') == FLEET
