# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where the fleet_* modules read the fleet from, written once."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  fleet:
    description:
      - The fleet itself, as the mapping under C(fleet:) of a fleet file (the inventory plugin sets it as the
        variable C(fleet)). Validated as the inventory plugin does; errors name the key path.
      - Exactly one of O(fleet) and O(src) is required.
    type: dict
  src:
    description:
      - Path of a fleet file (YAML with the fleet under C(fleet:)), read on the host the module runs on.
      - Exactly one of O(fleet) and O(src) is required.
    type: path
"""

    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Set O(fleet) or O(src) once with C(module_defaults) and C(group/ephemeral.castle.fleet).
    support: full
    membership:
      - ephemeral.castle.fleet
"""
