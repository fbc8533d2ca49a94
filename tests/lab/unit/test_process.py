"""Processes the lab starts are recorded and stopped with their whole process group."""

import os

import pytest

from castle_lab import process


def alive(pid):
    return process._start_time(pid) is not None


def test_stop_ends_the_process_and_its_children(tmp_path):
    # A shell that starts a child of its own: both must go.
    proc = process.spawn(tmp_path, 'svc', ['sh', '-c', 'sleep 300 & echo $! > child; wait'], cwd=tmp_path)
    child = int(process.wait_until(lambda: (tmp_path / 'child').read_text().strip(), 10, 'child pid'))
    assert process.recorded(tmp_path, 'svc') == proc.pid
    assert process.stop(tmp_path, 'svc') == proc.pid
    proc.wait(timeout=10)
    process.wait_until(lambda: not alive(child), 10, 'child exit')
    assert process.recorded(tmp_path, 'svc') is None
    assert not (tmp_path / 'svc.pid').exists()


def test_a_reused_pid_is_not_mistaken_for_the_service(tmp_path):
    (tmp_path / 'svc.pid').write_text('{0} 1\n'.format(os.getpid()))
    assert process.recorded(tmp_path, 'svc') is None


def test_a_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(process.LabError, match='svc: cannot start /nonexistent/bin'):
        process.spawn(tmp_path, 'svc', ['/nonexistent/bin'])


def test_wait_until_names_what_it_waited_for():
    with pytest.raises(process.LabError, match='the moon not ready after 0s'):
        process.wait_until(lambda: False, 0.1, 'the moon')
