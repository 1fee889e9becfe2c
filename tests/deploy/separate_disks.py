"""Ray's fake multi-node provider, with each fake node keeping its runtime environments in its
own folder, as a real node does on its own disk.

Why: the fake provider starts every "node" in the head's session folder, so all of them share
one ``runtime_resources/``. A node that sets up a job's ``working_dir`` for the first time
deletes and re-extracts it (Ray's working_dir plugin unpacks with ``overwrite=True``) — under
the feet of the other node's workers, which import the job's code from that very folder. CI
saw it as ``ModuleNotFoundError: No module named 'dcesynth.segmentation.cases'`` in the tasks
that ran on the head while the autoscaled GPU node came up. ``ray.cluster_utils.Cluster`` gives
each node its own ``runtime_env_dir_name`` for the same reason; this provider does the same.

Loaded by the autoscaler on the test head (``provider: {type: external, module: …}``), so it
must import without the test suite: it is found through the head's ``PYTHONPATH``.
"""

from __future__ import annotations

import threading
from unittest import mock

import ray._private.parameter
from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider

_patch_lock = threading.Lock()


class SeparateDisksFakeProvider(FakeMultiNodeProvider):
    """FakeMultiNodeProvider whose nodes each get ``runtime_resources_<n>/``."""

    _created = 0

    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        real = ray._private.parameter.RayParams
        with _patch_lock:
            SeparateDisksFakeProvider._created += 1
            folder = f"runtime_resources_node{SeparateDisksFakeProvider._created}"

            def params(*args, **kwargs):
                kwargs.setdefault("runtime_env_dir_name", folder)
                return real(*args, **kwargs)

            # the parent looks RayParams up on the module at call time: swap it for this call
            with mock.patch.object(ray._private.parameter, "RayParams", params):
                super()._create_node_with_resources_and_labels(
                    node_config, tags, count, resources, labels
                )
