"""The frozen framework plugin for harness: registers :class:`FrozenAdapter`."""

import harness

from harness_frozen.adapter import FrozenAdapter


@harness.hookimpl
def harness_register_frameworks(register):
    register(FrozenAdapter())
