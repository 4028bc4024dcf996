"""The CTC fine-tuning task: letters, CTC loss summed over utterances, validation WER by greedy decoding.

Validation measures exactly what `speechssl evaluate` publishes: the same emission code (`ModelEmitter`,
`collect_emissions`), the same greedy decoder and the same scorer (`speechssl.decoding.evaluate.evaluate`), so
checkpoint_best is picked by the number that is reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.data.collate import LabeledBatch
from speechssl.data.tokenizer import LetterTokenizer, is_special
from speechssl.decoding.ctc import GreedyCTCDecoder
from speechssl.decoding.evaluate import collect_emissions, evaluate
from speechssl.decoding.inference import Emissions, ModelEmitter
from speechssl.models.masking import mask_seed
from speechssl.training.config import FinetuneConfig, apply_overrides
from speechssl.training.data_setup import build_loader, tokenizer_from_data
from speechssl.training.distributed import DistInfo, unused_parameter_reasons
from speechssl.training.loop import StepOutput

# Parameter names of the CTC head (everything else is "the encoder" for freeze_finetune_updates).
HEAD_PREFIXES = ("head.",)


def ctc_head_rows(source: LetterTokenizer, target: LetterTokenizer) -> list[int]:
    """For each of ``target``'s symbols, the row of a CTC head over ``source`` that scores it.

    A fine-tuned model carried over to new data rarely sees the same ``dict.ltr.txt``: fairseq-style
    dictionaries are sorted by letter count, so another corpus orders the same letters differently. The blank
    maps to the blank (whatever each calls it), every other symbol by name; a ``<...>`` special that ``source``
    lacks (never a CTC target) takes its unknown symbol's row. Letters of ``source`` the data lacks are dropped.

    Raises ValueError naming the letters of ``target`` that ``source`` has no row for.
    """
    index = {symbol: i for i, symbol in enumerate(source.symbols)}
    rows: list[int] = []
    new: list[str] = []
    for symbol in target.symbols:
        if symbol == target.blank:
            rows.append(source.blank_index)
        elif symbol in index and symbol != source.blank:
            rows.append(index[symbol])
        elif is_special(symbol):
            rows.append(source.unk_index)
        else:
            new.append(symbol)
    if new:
        raise ValueError(f"the checkpoint's CTC vocabulary lacks {new}")
    return rows


def build_ctc_model(cfg: FinetuneConfig, tokenizer: LetterTokenizer) -> nn.Module:
    """A CTC model from `init` (pretraining or CTC checkpoint; HF or fairseq too) or from the preset."""
    from speechssl.models import Wav2Vec2ForCTC, get_preset

    # A pretrained feature encoder stays frozen in fine-tuning (fairseq sets feature_grad_mult 0; it then runs
    # without gradient, which also saves most of the backward pass). A model trained from scratch trains its
    # feature encoder too: a frozen random encoder would make a strawman of the scratch baseline.
    # model.feature_grad_mult=... overrides either default.
    overrides = dict(cfg.model.overrides)
    overrides.setdefault("feature_grad_mult", 0.0 if cfg.init else 1.0)
    if not cfg.init:
        model_cfg = apply_overrides(get_preset(cfg.model.preset), overrides)
        model_cfg.validate()
        return Wav2Vec2ForCTC(model_cfg, len(tokenizer))
    from speechssl.interop import load_model

    loaded = load_model(cfg.init)
    # Fine-tuning overrides (dropouts, masking, layerdrop) apply on top of the pretrained architecture.
    model_cfg = apply_overrides(loaded.config, overrides)
    model_cfg.validate()
    model = Wav2Vec2ForCTC.from_pretrained_encoder(loaded.model.encoder, len(tokenizer), model_cfg)
    if loaded.task != "ctc":  # pretraining heads (quantizer, project_q, final_proj) are left behind, as fairseq does
        return model
    source = loaded.tokenizer
    if source is None:  # a CTC checkpoint without its vocabulary: trust that the sizes say the same thing
        if loaded.model.vocab_size != len(tokenizer):
            raise ValueError(f"init={cfg.init!r} is a CTC model over {loaded.model.vocab_size} symbols without "
                             f"its vocabulary; the data's dict.{cfg.data.labels}.txt gives {len(tokenizer)}")
        model.head.load_state_dict(loaded.model.head.state_dict())
        return model
    try:
        rows = ctc_head_rows(source, tokenizer)
    except ValueError as err:
        raise ValueError(
            f"init={cfg.init!r} is a CTC model whose vocabulary ({len(source)} symbols: "
            f"{''.join(s for s in source.symbols if len(s) == 1)}) lacks letters of the data's "
            f"dict.{cfg.data.labels}.txt ({err}); fine-tune from its encoder with a pretraining checkpoint "
            "instead, or prepare the data with the same letters") from None
    with torch.no_grad():  # the head's rows follow the data's letter order
        model.head.weight.copy_(loaded.model.head.weight[rows])  # (V_data, D)
        model.head.bias.copy_(loaded.model.head.bias[rows])  # (V_data,)
    if rows != list(range(len(source))):
        dropped = sorted(set(source.symbols) - set(tokenizer.symbols) - {source.blank})
        print(f"init: the CTC head's rows follow the data's dict.{cfg.data.labels}.txt "
              f"({len(rows)} symbols{'; dropped ' + ''.join(dropped) if dropped else ''})", flush=True)
    return model


class FinetuneTask:
    name = "ctc"

    def __init__(self, cfg: FinetuneConfig, *, device: torch.device, dist: DistInfo):
        self.cfg, self.device, self.dist = cfg, device, dist
        self.tokenizer = tokenizer_from_data(cfg.data)
        self.model = build_ctc_model(cfg, self.tokenizer)
        self.model_config = self.model.config
        seed = cfg.trainer.seed
        geometry = self.model_config.geometry
        self.train_loader = build_loader(cfg.data, cfg.data.train_subset, seed=seed, dist=dist, train=True,
                                         geometry=geometry, tokenizer=self.tokenizer,
                                         device=device)
        self.valid_loader = (build_loader(cfg.data, cfg.data.valid_subset, seed=seed, dist=dist, train=False,
                                          geometry=geometry, tokenizer=self.tokenizer, device=device)
                             if cfg.data.valid_subset else None)
        self._frozen: bool | None = None

    def train_batches(self, epoch: int, start: int) -> Iterator[Any]:
        loader = self.train_loader
        loader.set_epoch(epoch)
        loader.load_state_dict(loader.sampler.state_dict(position=start))
        return iter(loader)

    def batches_per_epoch(self, epoch: int) -> int:
        return len(self.train_loader)

    def before_update(self, model: nn.Module, num_updates: int) -> None:
        # The whole encoder is frozen (no gradients at all, so Adam leaves it untouched) for the first
        # freeze_finetune_updates; only the CTC head trains. A pretrained feature encoder stays frozen
        # throughout (feature_grad_mult = 0 runs it without gradient).
        frozen = num_updates < self.cfg.freeze_finetune_updates
        if frozen != self._frozen:
            for name, p in model.named_parameters():
                if not name.startswith(HEAD_PREFIXES):
                    p.requires_grad_(not frozen)
            self._frozen = frozen

    def forward(self, model: nn.Module, batch: Any, num_updates: int) -> StepOutput:
        seeds = [mask_seed(self.cfg.trainer.seed, num_updates, int(i)) for i in batch.ids.tolist()]
        # pinned on a GPU: overlaps the copy; the padding mask and target lengths stay on the host (LabeledBatch.to)
        batch = batch.to(self.device, non_blocking=True)
        out = model(batch.waveforms, batch.padding_mask, mask_seeds=seeds)
        log_probs = F.log_softmax(out.logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
        targets = batch.targets.clamp_min(0)
        input_lengths = (out.host_lengths if out.host_lengths is not None
                         else torch.full((log_probs.shape[1],), log_probs.shape[0], dtype=torch.long))
        loss = F.ctc_loss(log_probs, targets, input_lengths, batch.target_lengths,
                          blank=self.tokenizer.blank_index, reduction="sum", zero_infinity=True)
        n = float(batch.waveforms.shape[0])
        return StepOutput(loss=loss, sample_size=n, stats={"ctc_loss": loss.detach()},
                          audio_samples=int(batch.num_samples))

    def reduce(self, sums: dict[str, float], sample_size: float) -> dict[str, float]:
        return {"ctc_loss": sums.get("ctc_loss", 0.0) / max(sample_size, 1.0)}

    @torch.no_grad()
    def validate(self, model: nn.Module) -> dict[str, float]:
        """CTC loss, and greedy WER/CER as `speechssl evaluate` computes them, over the valid split."""
        if self.valid_loader is None or not self.dist.is_main:
            return {}
        was_training = model.training
        loss_sum = 0.0

        def add_loss(batch: LabeledBatch, out: Emissions) -> None:
            nonlocal loss_sum
            loss_sum += float(F.ctc_loss(out.log_probs.transpose(0, 1), batch.targets.clamp_min(0), out.lengths,
                                         batch.target_lengths, blank=self.tokenizer.blank_index,
                                         reduction="sum", zero_infinity=True))

        # fp32, as `speechssl evaluate` by default (validation never ran under the training's autocast)
        emitter = ModelEmitter(model, device=self.device)  # the valid loader normalises (data.normalize)
        data = collect_emissions(emitter, self.valid_loader, self.valid_loader.dataset.manifest, on_batch=add_loss)
        model.train(was_training)
        if not data.references:
            return {}
        result = evaluate(GreedyCTCDecoder(self.tokenizer), data)
        return {"ctc_loss": loss_sum / len(data.references), "wer": 100.0 * result.score.wer,
                "cer": 100.0 * result.score.cer}

    def best_key(self) -> tuple[str, bool]:
        return self.cfg.best_metric, True

    def health_sizes(self) -> dict[str, int | None]:
        return {}  # the codebook checks watch pretraining only

    def unused_parameter_reasons(self) -> list[str]:
        return unused_parameter_reasons(self.model_config, ctc=True,
                                        freeze_finetune_updates=self.cfg.freeze_finetune_updates)
