# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""vault_approle runs as its module does; a result that holds a newly issued secret ID is marked no_log, even on
a task that forgot `no_log: true`."""

from ansible_collections.ephemeral.castle.plugins.action.vault_init import ActionModule as SecretResultAction


class ActionModule(SecretResultAction):
    MODULE = 'ephemeral.castle.vault_approle'
    SECRET_RETURNS = ('secret_id',)
