"""fleet_report run in-process: writes fleet.md and fleet.svg once (then reports no change), check mode writes
nothing, diff shows each file, and incomplete results or a bad dest fail naming them."""

import os

import pytest

FLEET = {'machines': [{'name': 'pve-old', 'role': 'frozen', 'state': 'draining'},
                      {'name': 'pve-new', 'role': 'production'}],
         'workloads': [{'name': 'app', 'current_host': 'pve-old', 'target_host': 'pve-new', 'owner': 'web',
                        'wave': 1}]}
PLAN = {'machine': 'pve-old', 'waves': [{'wave': 1, 'workloads': ['app'], 'targets': {'app': 'pve-new'},
                                         'blocked_by': []}], 'staying': []}
GATE = {'target': 'machine/pve-old', 'passed': False,
        'reasons': [{'code': 'not-drained', 'message': 'workload app still runs on pve-old'}]}


def report(run_module, dest, check_mode=False, diff=False, **args):
    return run_module('fleet_report', check_mode=check_mode, diff=diff, fleet=FLEET, dest=str(dest), **args)


def test_the_report_is_written_once_then_unchanged(run_module, tmp_path):
    dest = tmp_path / 'report'
    first = report(run_module, dest, violations=[], drain_plans=[PLAN, {'skipped': True}], gates=[GATE])
    assert not first.failed and first.changed
    assert first['written'] == [str(dest / 'fleet.md'), str(dest / 'fleet.svg')]
    assert first['markdown'] == str(dest / 'fleet.md') and first['svg'] == str(dest / 'fleet.svg')
    markdown = (dest / 'fleet.md').read_text(encoding='utf-8')
    assert '- wave 1 (ready): app → pve-new' in markdown and '`not-drained` workload app still runs on pve-old' in markdown
    assert (dest / 'fleet.svg').read_text(encoding='utf-8').startswith('<?xml')
    assert {os.stat(dest / name).st_mode & 0o777 for name in ('fleet.md', 'fleet.svg')} == {0o644}
    again = report(run_module, dest, violations=[], drain_plans=[PLAN], gates=[GATE])
    assert not again.changed and again['written'] == []


def test_only_the_file_whose_content_changed_is_rewritten(run_module, tmp_path):
    report(run_module, tmp_path)
    svg = (tmp_path / 'fleet.svg').stat().st_mtime_ns
    result = report(run_module, tmp_path, violations=[])
    assert result.changed and result['written'] == [str(tmp_path / 'fleet.md')]
    assert (tmp_path / 'fleet.svg').stat().st_mtime_ns == svg
    assert 'Fleet rules: all pass.' in (tmp_path / 'fleet.md').read_text(encoding='utf-8')


def test_check_mode_writes_nothing_and_diff_shows_each_file(run_module, tmp_path):
    dest = tmp_path / 'report'
    result = report(run_module, dest, check_mode=True, diff=True)
    assert result.changed and len(result['written']) == 2
    assert not dest.exists()
    assert [d['after_header'] for d in result['diff']] == result['written']
    assert result['diff'][0]['before'] == '' and 'Fleet rules: not checked.' in result['diff'][0]['after']
    report(run_module, dest)
    retitled = report(run_module, dest, check_mode=True, diff=True, title='Site')
    assert [d['after_header'] for d in retitled['diff']] == retitled['written'] == [str(dest / 'fleet.md'),
                                                                                    str(dest / 'fleet.svg')]
    assert retitled['diff'][0]['before'].startswith('# Fleet report') and retitled['diff'][0]['after'].startswith('# Site')
    assert (dest / 'fleet.md').read_text(encoding='utf-8').startswith('# Fleet report')


def test_without_diff_no_diff_is_returned(run_module, tmp_path):
    assert 'diff' not in report(run_module, tmp_path)


@pytest.mark.parametrize('args, expected', [
    ({'drain_plans': [{'machine': 'pve-old'}]}, 'drain_plans[0] lacks waves: pass the registered results of the module'),
    ({'gates': [GATE, {'target': 'machine/x'}]}, 'gates[1] lacks passed, reasons: pass the registered results of the module'),
    ({'violations': [{'code': 'dependency-cycle'}]}, 'violations[0] lacks message: pass the registered results of the module'),
])
def test_incomplete_results_fail_naming_the_row(run_module, tmp_path, args, expected):
    result = report(run_module, tmp_path / 'report', **args)
    assert result.failed and result.msg == expected
    assert not (tmp_path / 'report').exists()


def test_a_dest_that_is_a_file_fails_naming_it(run_module, tmp_path):
    dest = tmp_path / 'report'
    dest.write_text('')
    result = report(run_module, dest)
    assert result.failed and result.msg == 'dest: {0} exists and is not a directory'.format(dest)


def test_a_dest_that_cannot_be_created_fails_naming_it(run_module, tmp_path):
    (tmp_path / 'file').write_text('')
    result = report(run_module, tmp_path / 'file' / 'report')
    assert result.failed and result.msg.startswith('cannot write the report in {0}: '.format(tmp_path / 'file' / 'report'))
