"""Runs a module's main() in this process, as ansible would on the controller, with its layer's client
replaced by a test's fake: the module's own decisions (check mode, diff, changed or not, errors) without a lab."""

import importlib
import json

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    """exit_json or fail_json was called; `result` is what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


class Result(dict):
    """A module's result, with failed/changed/msg as attributes for short asserts."""

    failed = property(lambda self: bool(self.get('failed')))
    changed = property(lambda self: bool(self.get('changed')))
    msg = property(lambda self: self.get('msg', ''))


def _exit(self, **result):
    result.setdefault('changed', False)
    raise ModuleExit(Result(json.loads(json.dumps(result, default=str))))


def _fail(self, msg, **result):
    raise ModuleExit(Result(json.loads(json.dumps(dict(result, msg=msg, failed=True), default=str))))


def load(name):
    """The module ephemeral.castle.<name> as a Python module (to patch what it imported)."""
    return importlib.import_module('ansible_collections.ephemeral.castle.plugins.modules.' + name)


def runner(monkeypatch):
    """run(name, check_mode=False, diff=False, **args) -> Result of ephemeral.castle.<name> (the run_module fixture)."""
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', _exit)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', _fail)

    def run(module_name, /, check_mode=False, diff=False, **args):  # a module may have an option `name`
        module = load(module_name)
        args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
        # A run's warnings in its result, as ansible shows them (not in the process's shared list).
        warned = []
        monkeypatch.setattr(basic.AnsibleModule, 'warn', lambda self, warning: warned.append(warning))
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as done:
                module.main()
        done.value.result['warnings'] = warned
        return done.value.result

    return run
