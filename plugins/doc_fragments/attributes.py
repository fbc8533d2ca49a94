# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Attributes every module of the collection declares, written once."""


class ModuleDocFragment:
    # A module that reads and writes; its own docs may narrow support with `details`.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Runs in check mode, reporting whether it would change anything while changing nothing.
    support: full
  diff_mode:
    description: In diff mode, returns the state before and after the change (or the change it would make, in check mode).
    support: full
"""

    # A read-only module (C(_info)): never changes anything, so check mode is trivially exact.
    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    description: Runs in check mode, reporting whether it would change anything while changing nothing.
    support: full
    details: This module only reads; it never reports a change.
  diff_mode:
    description: In diff mode, returns the state before and after the change (or the change it would make, in check mode).
    support: none
"""
