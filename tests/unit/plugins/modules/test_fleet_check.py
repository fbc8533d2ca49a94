"""fleet_check run in-process: its rules' codes and counts, failing or not on a violation, errors naming the bad
input, and nothing changed, in check mode or not."""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[4]
FIXTURES = REPO / 'tests' / 'fixtures' / 'fleet'


def fleet(**changes):
    data = {'machines': [{'name': 'gw-1', 'role': 'production'}, {'name': 'laptop', 'role': 'workstation'}],
            'workloads': [{'name': 'openbao', 'current_host': 'gw-1', 'target_host': 'gw-1', 'owner': 'platform',
                           'wave': 1}],
            'tunnels': [{'name': 'shell', 'from': 'laptop', 'to': 'gw-1', 'direction': 'forward'}]}
    data.update(changes)
    return data


@pytest.mark.parametrize('check_mode', [False, True])
def test_a_clean_fleet_file_passes_with_every_code_counted_and_nothing_changed(run_module, check_mode):
    result = run_module('fleet_check', check_mode=check_mode, src=str(FIXTURES / 'fixed.fleet.yml'))
    assert not result.failed and not result.changed
    assert result['passed'] is True and result['violations'] == []
    assert result['counts'] == {code: 0 for code in ('workload-no-target', 'workload-no-owner',
                                                     'critical-tunnel-on-workstation', 'workload-targets-frozen',
                                                     'wave-before-dependent', 'dependency-cycle', 'tunnel-port-clash',
                                                     'mesh-unit-threshold')}


def test_violations_fail_the_module_with_every_code_and_the_whole_result(run_module):
    result = run_module('fleet_check', src=str(FIXTURES / 'workstation-tunnels.fleet.yml'))
    assert result.failed and not result.changed
    assert result.msg.startswith('the fleet breaks 2 rule(s): [critical-tunnel-on-workstation] critical tunnel '
                                 'vault-reverse starts on workstation laptop')
    assert '; [critical-tunnel-on-workstation] critical tunnel gateway-runtime ends on workstation laptop' in result.msg
    assert result['passed'] is False and result['counts']['critical-tunnel-on-workstation'] == 2
    assert [v['rows'][0]['tunnel'] for v in result['violations']] == ['vault-reverse', 'gateway-runtime']


def test_without_fail_on_violation_the_violations_are_returned(run_module):
    broken = fleet(workloads=[{'name': 'openbao', 'current_host': 'gw-1', 'wave': 1}])
    result = run_module('fleet_check', fleet=broken, fail_on_violation=False)
    assert not result.failed and result['passed'] is False
    assert [v['code'] for v in result['violations']] == ['workload-no-target', 'workload-no-owner']
    assert result['counts']['workload-no-target'] == 1 and result['counts']['dependency-cycle'] == 0


def test_the_fleet_option_passes_too(run_module):
    result = run_module('fleet_check', fleet=fleet())
    assert not result.failed and result['passed'] is True


def test_an_invalid_fleet_fails_naming_the_key_path(run_module):
    result = run_module('fleet_check', fleet=fleet(tunnels=[{'name': 'shell', 'from': 'laptop', 'to': 'ghost',
                                                             'direction': 'sideways'}]))
    assert result.failed
    assert result.msg.startswith('the fleet option: 2 error(s) in the fleet:')
    assert result['errors'] == ["fleet.tunnels[0].direction: expected one of forward, reverse, got 'sideways'",
                                "fleet.tunnels[0].to: expected a machine, cluster or cluster node of the fleet, "
                                "got unknown 'ghost'"]


def test_a_missing_fleet_file_fails_naming_it(run_module, tmp_path):
    missing = str(tmp_path / 'none.fleet.yml')
    result = run_module('fleet_check', src=missing)
    assert result.failed
    assert result['errors'] == ['cannot read the fleet file: No such file or directory']
    assert result.msg.startswith(missing + ': 1 error(s)')


@pytest.mark.parametrize('args, expected', [
    ({}, 'one of the following is required: fleet, src'),
    ({'fleet': {'machines': []}, 'src': '/x.fleet.yml'}, 'parameters are mutually exclusive: fleet|src'),
])
def test_exactly_one_of_fleet_and_src(run_module, args, expected):
    result = run_module('fleet_check', **args)
    assert result.failed and expected in result.msg


def test_a_warning_is_reported_but_does_not_fail(run_module):
    tunnels = [{'name': 't{0}'.format(i), 'from': 'gw-1', 'to': 'laptop', 'direction': 'forward',
                'local_port': 18000 + i, 'remote_port': 8080} for i in range(6)]
    result = run_module('fleet_check', fleet=fleet(tunnels=tunnels))
    assert not result.failed and result['passed'] is True
    assert [v['severity'] for v in result['violations']] == ['warning']
    assert result['counts']['mesh-unit-threshold'] == 1
    assert result['warnings'] == ['[mesh-unit-threshold] machine gw-1 runs 6 tunnel units (more than 5): consider a '
                                  'WireGuard mesh']
