"""fusioncim/sim/rtlsim.py: builds shared between processes (the regression and a user's command) are locked."""

import threading

from fusioncim.core import cache
from fusioncim.sim import rtlsim
from fusioncim.core.config import PRESETS

TINY = PRESETS["test"].replace(rows=1, head_dim=2)


def test_concurrent_builds_of_one_design_build_it_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONCIM_BUILD", str(tmp_path))
    real, builds = rtlsim._runner, []

    def counting(sim):
        runner = real(sim)
        build = runner.build

        def counted(*args, **kwargs):
            builds.append(sim)
            return build(*args, **kwargs)
        runner.build = counted
        return runner
    monkeypatch.setattr(rtlsim, "_runner", counting)
    outs, errors = [], []

    def one():
        try:
            outs.append(rtlsim.build("ip_cim", TINY, "icarus"))
        except Exception as exc:          # reported below; a thread's exception would be lost
            errors.append(exc)
    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and builds == ["icarus"]
    assert len(set(outs)) == 1 and (outs[0] / "fusioncim.stamp").exists()


def test_the_lock_excludes_another_holder(tmp_path):
    path = tmp_path / "x.lock"
    order = []
    def second():
        with cache.locked(path):
            order.append("second")
    with cache.locked(path):
        t = threading.Thread(target=second)
        t.start()
        t.join(0.5)
        order.append("first released")
    t.join(5)
    assert order == ["first released", "second"]
