# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The phoenix gate's consent, which every module that destroys a machine asks for."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  gate_token:
    description:
      - The token M(ephemeral.castle.fleet_gate) issued when it cleared the target of this wipe (its C(token)).
      - Required to destroy anything, except in check mode, where a given token is checked but not used.
      - Refused when the journal does not know it, when it was issued for other fleet names, when it has
        expired, when it was already used for the same name and action, or when the fleet file changed since.
    type: str
  gate_journal:
    description:
      - The phoenix journal the token was issued in (fleet_gate's O(ephemeral.castle.fleet_gate#module:journal)).
        Each use of the token is recorded there.
    type: path
"""
