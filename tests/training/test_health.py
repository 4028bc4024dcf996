from speechssl.training.health import HealthConfig, HealthMonitor


def _run(monitor, n, **stats):
    out = []
    for u in range(1, n + 1):
        out += monitor.observe(u, dict(stats))
    return out


def test_codebook_collapse_warns_with_advice():
    m = HealthMonitor(HealthConfig(warmup=10, window=10), num_codes=640, num_negatives=100)
    warnings = _run(m, 40, code_perplexity=3.6, prob_perplexity=5.0, accuracy=0.3, contrastive_loss=2.0,
                    diversity=0.994, grad_norm=1.0)
    kinds = {w.kind for w in warnings}
    assert "codebook_collapse" in kinds
    msg = next(w.message for w in warnings if w.kind == "codebook_collapse")
    assert "3.6" in msg and "optim.lr" in msg


def test_healthy_run_is_silent():
    m = HealthMonitor(HealthConfig(warmup=10, window=10, stall_updates=20), num_codes=640, num_negatives=100)
    warnings = _run(m, 100, code_perplexity=300.0, prob_perplexity=400.0, accuracy=0.4, contrastive_loss=2.0,
                    diversity=0.4, grad_norm=1.0)
    assert warnings == []


def test_stalled_accuracy_and_trivial_task():
    m = HealthMonitor(HealthConfig(warmup=5, window=10, stall_updates=20), num_codes=640, num_negatives=100)
    kinds = {w.kind for w in _run(m, 40, code_perplexity=300.0, accuracy=0.0099, contrastive_loss=4.6,
                                  diversity=0.3, grad_norm=1.0)}
    assert "accuracy_stalled" in kinds
    m = HealthMonitor(HealthConfig(warmup=5, window=10), num_codes=640, num_negatives=100)
    kinds = {w.kind for w in _run(m, 30, code_perplexity=300.0, accuracy=1.0, contrastive_loss=0.0,
                                  diversity=0.3, grad_norm=1.0)}
    assert "trivial_task" in kinds


def test_grad_spike_and_cooldown():
    m = HealthMonitor(HealthConfig(warmup=0, window=10, cooldown=1000), num_codes=None, num_negatives=None)
    for u in range(1, 30):
        assert m.observe(u, {"grad_norm": 1.0}) == []
    w = m.observe(30, {"grad_norm": 500.0})
    assert [x.kind for x in w] == ["grad_spike"]
    assert m.observe(31, {"grad_norm": 500.0}) == []  # cooldown: warned once


def test_a_short_run_hears_of_chance_accuracy_at_its_share_not_at_update_1000():
    """The issue's tiny run: 10 distractors, accuracy 0.094 (chance 0.091) for a 300-update run. With the run's
    length the warning comes at half of it (update 150), not at update 1,000 (past the end of the run)."""
    stats = {"code_perplexity": 300.0, "accuracy": 0.094, "contrastive_loss": 2.3, "diversity": 0.3, "grad_norm": 1.0}
    m = HealthMonitor(HealthConfig(window=10), num_codes=640, num_negatives=10, total_updates=300)
    stalled = [w for w in _run(m, 200, **stats) if w.kind == "accuracy_stalled"]
    assert [w.update for w in stalled] == [150]
    assert "0.094" in stalled[0].message and "0.091" in stalled[0].message
    unknown_length = HealthMonitor(HealthConfig(window=10), num_codes=640, num_negatives=10)
    assert [w for w in _run(unknown_length, 200, **stats) if w.kind == "accuracy_stalled"] == []
    learning = HealthMonitor(HealthConfig(window=10), num_codes=640, num_negatives=10, total_updates=300)
    assert _run(learning, 200, **{**stats, "accuracy": 0.2}) == []


def test_warmup_longer_than_the_run_is_named_before_the_first_update():
    from speechssl.training.health import schedule_warnings

    (warning,) = schedule_warnings(warmup_updates=32000, max_updates=2000)
    assert warning.kind == "warmup_longer_than_run" and "32000" in warning.message and "2000" in warning.message
    assert "schedule.warmup_fraction" in warning.message
    assert schedule_warnings(warmup_updates=60, max_updates=1000) == []
    assert schedule_warnings(warmup_updates=32000, max_updates=2000, start_update=2000) == []  # nothing to run
