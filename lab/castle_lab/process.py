"""Processes the lab starts: detached, recorded by PID and start time, stopped by process group."""

import os
import signal
import subprocess
import time


class LabError(Exception):
    """A lab operation failed; the message is one line for the operator."""


class ProcessGone(LabError):
    """A service's process exited: waiting longer cannot help."""


def _start_time(pid):
    """The kernel's start time of a live (non-zombie) process, or None."""
    try:
        with open('/proc/{0}/stat'.format(pid)) as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ('Z', 'X') else fields[19]


def alive(pid):
    """Whether a process runs (a zombie does not)."""
    return _start_time(pid) is not None


def spawn(directory, name, argv, env=None, cwd=None):
    """Start argv in its own session, logging to <directory>/<name>.log; record its PID."""
    log = open(directory / (name + '.log'), 'ab')
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env, cwd=cwd)
    except OSError as exc:
        raise LabError('{0}: cannot start {1}: {2}'.format(name, argv[0], exc.strerror)) from exc
    finally:
        log.close()
    (directory / (name + '.pid')).write_text('{0} {1}\n'.format(proc.pid, _start_time(proc.pid)))
    return proc


def recorded(directory, name):
    """The PID recorded for a process if that same process is still alive, else None."""
    try:
        pid, started = (directory / (name + '.pid')).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid)
    return pid if _start_time(pid) == started else None


def stop(directory, name, grace=10.0):
    """Stop a recorded process and its process group: TERM, then KILL after `grace` seconds."""
    pid = recorded(directory, name)
    pidfile = directory / (name + '.pid')
    if pid is not None:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _start_time(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return pid


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def wait_until(check, timeout, what):
    """Poll check() until it returns a true value or the deadline passes; return that value."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    last = None
    while True:
        try:
            result = check()
            if result:
                return result
        except ProcessGone:
            raise
        except Exception as exc:  # the check's own failure is the reason to keep waiting
            last = exc
        if time.monotonic() >= deadline:
            raise LabError('{0} not ready after {1:.0f}s{2}'.format(what, timeout, ': {0}'.format(last) if last else ''))
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
