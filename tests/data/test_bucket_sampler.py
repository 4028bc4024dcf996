import numpy as np
import pytest

from speechssl.data.sampler import BucketBatchSampler

MAX_TOKENS = 1_400_000


def _lognormal_lengths(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    # speech-like: median 6 s, long right tail, cropped to 250k samples as the pretraining dataset reports
    return np.exp(rng.normal(np.log(6 * 16000), 0.5, n)).astype(np.int64).clip(32000, 250000)


@pytest.mark.parametrize("replicas", [1, 3, 4])
def test_every_utterance_once_per_epoch_and_equal_batch_counts(replicas):
    lengths = _lognormal_lengths()
    for epoch in (0, 1):
        per_rank = []
        for rank in range(replicas):
            s = BucketBatchSampler(lengths, max_tokens=MAX_TOKENS, seed=5, num_replicas=replicas, rank=rank,
                                   required_batch_size_multiple=8)
            s.set_epoch(epoch)
            per_rank.append(list(s))
            assert len(per_rank[-1]) == s.num_batches == len(per_rank[0])
        seen = sorted(i for batches in per_rank for b in batches for i in b)
        assert seen == list(range(len(lengths)))


def test_budget_padding_and_shuffling():
    lengths = _lognormal_lengths()
    s = BucketBatchSampler(lengths, max_tokens=MAX_TOKENS, seed=1, required_batch_size_multiple=8)
    batches = list(s)
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert max(len(b) * lengths[b].max() for b in batches) <= MAX_TOKENS
    padding = 1 - lengths.sum() / padded
    assert padding < 0.15
    s.set_epoch(1)
    assert list(s) != batches  # batch order reshuffled per epoch
    s.set_epoch(0)
    assert list(s) == batches  # ... and reproducible by (seed, epoch)


def test_mid_epoch_resume_yields_exactly_the_rest():
    lengths = _lognormal_lengths(500, seed=3)
    s = BucketBatchSampler(lengths, max_tokens=400_000, seed=2, num_replicas=2, rank=1)
    s.set_epoch(3)
    full = list(s)
    s.set_epoch(3)
    it = iter(s)
    head = [next(it) for _ in range(7)]
    state = s.state_dict()
    assert state["position"] == 7 and state["epoch"] == 3

    fresh = BucketBatchSampler(lengths, max_tokens=400_000, seed=2, num_replicas=2, rank=1)
    fresh.load_state_dict(state)
    fresh.set_epoch(3)  # a training loop calls this again at the top of the epoch: must keep the position
    assert len(fresh) == len(full) - 7
    assert head + list(fresh) == full
    fresh.set_epoch(4)
    assert len(list(fresh)) == fresh.num_batches  # next epoch starts from its beginning


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="item 1 has 900"):
        BucketBatchSampler([10, 900], max_tokens=500)
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([10, 20], max_tokens=500, num_replicas=2, rank=2)
    s = BucketBatchSampler([10, 20, 30], max_tokens=500, seed=1)
    with pytest.raises(ValueError, match="seed"):
        BucketBatchSampler([10, 20, 30], max_tokens=500, seed=2).load_state_dict(s.state_dict())


def test_finished_epoch_checkpoint_and_reiteration():
    lengths = _lognormal_lengths(300, seed=4)
    s = BucketBatchSampler(lengths, max_tokens=400_000, seed=0)
    first = list(s)
    state = s.state_dict()
    assert state["position"] == len(first) == s.num_batches  # a checkpoint now says "epoch done"
    resumed = BucketBatchSampler(lengths, max_tokens=400_000, seed=0)
    resumed.load_state_dict(state)
    assert len(resumed) == 0 and list(resumed) == []
    assert list(s) == first  # iterating a finished epoch again (validation) starts it over
