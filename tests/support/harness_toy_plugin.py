"""``toy``: a framework plugin for a library, ``toyframe``, that is installed only by ``--with``.

``toyframe`` is built by tests/test_versions.py as wheels of two versions, like two releases
of a real framework: 1.0 spends its ``EPOCH_SECONDS``, 0.05 s, on an epoch, 2.0 three times as
long, a regression for ``harness history`` to find. Training is the ``centroid``
classifier of :mod:`harness_test_plugins`, so both versions learn the same and differ only in
time. Loaded with ``HARNESS_PLUGINS=harness_toy_plugin``.
"""

from __future__ import annotations

import time

from harness_test_plugins import CentroidAdapter, CentroidTrainer

import harness


class ToyTrainer(CentroidTrainer):
    def train_epoch(self, batch_order):
        import toyframe

        time.sleep(toyframe.EPOCH_SECONDS)
        return super().train_epoch(batch_order)


class ToyAdapter(CentroidAdapter):
    name = "toy"
    import_name = "toyframe"
    distribution = "toyframe"
    install_hint = "harness run --with toyframe==1.0 --find-links <the wheels' folder>"

    def build(self, task, weights, x, y):
        return ToyTrainer(x, y, task.model.layers[-1].units)


@harness.hookimpl
def harness_register_frameworks(register):
    register(ToyAdapter())
