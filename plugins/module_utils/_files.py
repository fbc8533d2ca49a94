# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files the modules write on the controller: whole or not at all (a temporary file beside the target, then a
rename), with the mode set before the content becomes visible."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import tempfile


class FileWriteError(Exception):
    """A file could not be read or written; the message names the path and the reason."""


def read_text(path):
    """The file's text, or None when there is no such file."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return None
        raise FileWriteError('cannot read {0}: {1}'.format(path, exc))


def write_temp(path, content, mode=0o600):
    """A temporary file beside path (same filesystem, so a rename can replace path, and the same extension, for
    a checker that goes by it) holding content, with `mode` from its first byte; the caller renames or removes it."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix='.' + os.path.basename(path) + '.',
                                   suffix=os.path.splitext(path)[1])
    except (IOError, OSError) as exc:
        raise FileWriteError('cannot write {0}: {1}'.format(path, exc))
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(content)
    except (IOError, OSError) as exc:
        os.remove(tmp)
        raise FileWriteError('cannot write {0}: {1}'.format(path, exc))
    return tmp


def write_atomic(path, content, mode=0o600):
    """Replace path with content in one rename; the file has `mode` from its first byte."""
    tmp = write_temp(path, content, mode)
    try:
        os.replace(tmp, path)
    except (IOError, OSError) as exc:
        os.remove(tmp)
        raise FileWriteError('cannot write {0}: {1}'.format(path, exc))


def write_file(path, content, mode=0o600, check_mode=False):
    """Make path hold content with mode; True when it changed (in check mode: when it would)."""
    if read_text(path) == content:
        if os.stat(path).st_mode & 0o777 == mode:
            return False
        if not check_mode:
            try:
                os.chmod(path, mode)
            except (IOError, OSError) as exc:
                raise FileWriteError('cannot set the mode of {0}: {1}'.format(path, exc))
        return True
    if not check_mode:
        write_atomic(path, content, mode)
    return True


def write_private(path, content, check_mode=False):
    """write_file with mode 0600: for keys, tokens, kubeconfigs and talosconfigs."""
    return write_file(path, content, 0o600, check_mode)
