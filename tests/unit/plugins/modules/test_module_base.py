"""The module base every module is built on: spec merging, constraints, errors turned into fail_json."""

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.ephemeral.castle.plugins.module_utils import base
from ansible_collections.ephemeral.castle.plugins.module_utils._files import FileWriteError


class Boom(base.CastleError):
    def details(self):
        return {'rc': 3}


LAYER = base.Layer({'host': base.option('str', required=True), 'retries': base.option('int', 3, ['api_retries'])},
                   mutually_exclusive=[('host', 'socket')])


@pytest.fixture
def exits(run_module):  # run_module patches exit_json and fail_json
    return run_module


def make(args, **options):
    with patch_module_args(args):
        return LAYER.module(dict(socket=base.option('str'), **base.wait_options(60, timeout_aliases=['timeout'])),
                            **options)


def test_a_layer_merges_its_options_and_keeps_old_names_as_aliases(exits):
    module = make({'host': 'h', 'api_retries': 5, 'timeout': 9})
    assert module.params['retries'] == 5
    assert module.params['wait_timeout'] == 9
    assert module.params['wait'] is True
    assert module.check_mode is False


def test_constraints_of_the_layer_and_the_module_both_hold(exits):
    with pytest.raises(Exception) as done:
        make({'host': 'h', 'socket': 's'})
    assert 'mutually exclusive' in done.value.result['msg']
    with pytest.raises(Exception) as done:
        make({'host': 'h', 'wait': False}, required_if=[('wait', False, ['socket'])])
    assert 'socket' in done.value.result['msg']


def test_a_missing_library_fails_naming_it(exits):
    layer = base.Layer({}, requires=('hvac', False, 'no module named hvac'))
    with patch_module_args({}):
        with pytest.raises(Exception) as done:
            layer.module({})
    assert 'hvac' in done.value.result['msg']


@pytest.mark.parametrize('error, expected', [
    (Boom('node 10.0.0.1 refused'), {'msg': 'node 10.0.0.1 refused', 'rc': 3, 'failed': True}),
    (FileWriteError('cannot write /x: denied'), {'msg': 'cannot write /x: denied', 'failed': True}),
    (ValueError('bad size'), {'msg': 'bad size', 'failed': True}),
])
def test_run_module_turns_errors_into_fail_json(exits, error, expected):
    module = make({'host': 'h'})

    def action():
        raise error
    with pytest.raises(Exception) as done:
        base.run_module(module, action, errors=(ValueError,))
    assert {k: done.value.result[k] for k in expected} == expected


def test_run_module_exits_with_the_result(exits):
    module = make({'host': 'h'})
    with pytest.raises(Exception) as done:
        base.run_module(module, lambda: {'changed': True, 'node': 'n'})
    assert done.value.result == {'changed': True, 'node': 'n'}
