"""The session's Ray was started by `init_ray`: its workers know which instance they belong to."""

from __future__ import annotations


def test_workers_know_their_cluster(ray_session) -> None:
    ray = ray_session

    @ray.remote(num_cpus=0)
    def seen() -> tuple[str | None, str]:
        import os

        import ray as r

        return os.environ.get("RAY_ADDRESS"), r.get_runtime_context().gcs_address

    env_address, actual = ray.get(seen.remote())
    # what Train's placement-group cleaner resolves when several instances run on one machine
    assert env_address == actual == ray.get_runtime_context().gcs_address


def test_train_polls_its_workers_often() -> None:
    import os

    from dcesynth.cluster import init_ray

    init_ray()  # already initialised: no new instance, but the polling interval is set
    assert float(os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"]) <= 0.5
