import numpy as np
import pytest
import torch

from speechssl.data.audio import AudioError
from speechssl.data.datasets import AudioDatasetConfig, LabeledAudioDataset, UnlabeledAudioDataset
from speechssl.data.loader import LoaderConfig, build_dataloader
from speechssl.data.manifest import Manifest, ManifestEntry, words_to_letters
from speechssl.data.tokenizer import LetterTokenizer

SECONDS = [0.5, 0.9, 0.3, 1.2, 0.7, 0.05, 1.0, 0.6]


@pytest.fixture
def manifest(speech_tree):
    files = {f"spk{i % 2}/u{i}.flac": s for i, s in enumerate(SECONDS)}
    root = speech_tree(files)
    return Manifest(root=root, entries=[ManifestEntry(path=p, num_samples=round(s * 16000))
                                        for p, s in files.items()])


def test_unlabeled_drops_short_and_crops_to_shortest_deterministically(manifest):
    cfg = AudioDatasetConfig(max_sample_size=12000, min_sample_size=4000, seed=3)
    ds = UnlabeledAudioDataset(manifest, cfg)
    assert len(ds) == 7 and ds.num_dropped_short == 1 and 5 not in ds.kept_ids.tolist()
    assert ds.batch_lengths.max() == 12000
    items = [ds[i] for i in range(3)]
    batch = ds.collate(items)
    shortest = min(8000, 12000, 4800)
    assert batch.waveforms.shape == (3, shortest) and batch.padding_mask is None
    assert batch.ids.tolist() == [0, 1, 2] and batch.num_samples == 3 * shortest
    # each row is a contiguous window of its utterance
    for row, item in zip(batch.waveforms.numpy(), items):
        w = item.waveform
        starts = [s for s in range(len(w) - shortest + 1) if np.array_equal(w[s:s + shortest], row)]
        assert starts
    again = ds.collate([ds[i] for i in range(3)])
    assert torch.equal(again.waveforms, batch.waveforms)  # same (seed, epoch, id) -> same crops
    ds.set_epoch(1)
    assert not torch.equal(ds.collate(items).waveforms, batch.waveforms)


def test_unlabeled_pad_mode_masks_padding(manifest):
    ds = UnlabeledAudioDataset(manifest, AudioDatasetConfig(max_sample_size=16000, min_sample_size=0, pad=True))
    batch = ds.collate([ds[0], ds[3]])  # 8000 and 19200 (cropped to 16000) samples
    assert batch.waveforms.shape == (2, 16000)
    assert batch.padding_mask[0, 8000:].all() and not batch.padding_mask[0, :8000].any()
    assert not batch.padding_mask[1].any() and batch.waveforms[0, 8000:].abs().sum() == 0
    assert batch.num_samples == 24000


def test_labeled_batch_targets_and_texts(manifest):
    tok = LetterTokenizer.default_english()
    words = ["A B", "HELLO", "HI", "CAT SAT", "X", "TOO SHORT", "DOG", "YES"]
    ltr = [words_to_letters(w) for w in words]
    ds = LabeledAudioDataset(manifest, ltr, tok, AudioDatasetConfig(max_sample_size=17000, min_sample_size=1000,
                                                                    pad=True))
    assert ds.num_dropped_long == 1 and ds.num_dropped_short == 1 and len(ds) == 6
    batch = ds.collate([ds[0], ds[1]])
    assert batch.texts == ["A B", "HELLO"]
    assert batch.target_lengths.tolist() == [4, 6]  # "A | B |", "H E L L O |"
    assert batch.targets[0, 4:].eq(-100).all()
    assert tok.decode(batch.targets[1, :6]) == "HELLO"
    assert batch.padding_mask.shape == batch.waveforms.shape == (2, 14400)
    assert batch.padding_mask[0].sum() == 14400 - 8000


def test_bad_file_raises_naming_it_or_is_skipped_and_counted(manifest):
    (manifest.root / manifest.entries[1].path).write_bytes(b"corrupt")
    (manifest.root / manifest.entries[3].path).unlink()
    strict = UnlabeledAudioDataset(manifest, AudioDatasetConfig(min_sample_size=0))
    with pytest.raises(AudioError, match="u1.flac"):
        strict[1]
    with pytest.raises(AudioError, match="u3.flac.*not found"):
        strict[3]
    lenient = UnlabeledAudioDataset(manifest, AudioDatasetConfig(min_sample_size=0, skip_bad_files=True))
    batch = lenient.collate([lenient[i] for i in range(4)])
    assert batch.ids.tolist() == [0, 2] and batch.num_skipped == 2 and lenient.num_bad_files == 2


def test_loader_with_workers_resumes_to_the_bit(manifest):
    cfg = AudioDatasetConfig(max_sample_size=12000, min_sample_size=4000, seed=9)
    loader_cfg = LoaderConfig(max_tokens=30000, required_batch_size_multiple=1, seed=4, num_workers=1)
    loader = build_dataloader(UnlabeledAudioDataset(manifest, cfg), loader_cfg)
    loader.set_epoch(2)
    full = list(loader)
    assert sorted(i for b in full for i in b.ids.tolist()) == [0, 1, 2, 3, 4, 6, 7]
    assert all(b.waveforms.numel() <= 30000 for b in full)

    loader.set_epoch(2)
    it = iter(loader)
    first = next(it)
    state = loader.state_dict()
    del it
    assert state["position"] == 1
    resumed = build_dataloader(UnlabeledAudioDataset(manifest, cfg),
                               LoaderConfig(max_tokens=30000, required_batch_size_multiple=1, seed=4))
    resumed.load_state_dict(state)
    resumed.set_epoch(2)
    rest = list(resumed)
    assert [b.ids.tolist() for b in [first, *rest]] == [b.ids.tolist() for b in full]
    for a, b in zip(rest, full[1:]):
        assert torch.equal(a.waveforms, b.waveforms)
    assert resumed.state_dict()["position"] == len(full)  # finished epoch
    assert len(list(resumed)) == len(full)  # iterated again (validation): starts over


def test_persistent_workers_crop_each_epoch_as_the_main_process_does(manifest):
    """A worker kept from one epoch to the next (one torch DataLoader for the loader's lifetime) still crops
    at each batch's epoch, which reaches it with the batch: batches equal those loaded without workers, and the
    crops change from epoch to epoch."""
    cfg = AudioDatasetConfig(max_sample_size=6000, min_sample_size=4000, seed=9)

    def loader(num_workers: int):
        return build_dataloader(UnlabeledAudioDataset(manifest, cfg), LoaderConfig(
            max_tokens=30000, required_batch_size_multiple=1, seed=4, num_workers=num_workers))

    with_workers, main = loader(1), loader(0)
    torch_loader = with_workers.torch_loader()
    assert torch_loader.persistent_workers and with_workers.torch_loader() is torch_loader
    assert not main.torch_loader().persistent_workers
    epochs = []
    for epoch in (1, 2, 3):
        with_workers.set_epoch(epoch)
        main.set_epoch(epoch)
        got, expected = list(with_workers), list(main)
        assert [b.ids.tolist() for b in got] == [b.ids.tolist() for b in expected]
        for a, b in zip(got, expected):
            assert torch.equal(a.waveforms, b.waveforms), epoch
        epochs.append({i: row for b in got for i, row in zip(b.ids.tolist(), b.waveforms)})
    assert any(not torch.equal(epochs[0][i], epochs[1][i]) for i in epochs[0])
