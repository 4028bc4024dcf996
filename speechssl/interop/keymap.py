"""Parameter-name translation between speechssl and another layout (transformers, fairseq).

A `KeyMap` is a list of prefix templates ``(ours, theirs)`` where ``{i}`` stands for a layer number; a key is
renamed by the first template whose prefix matches, the rest of the key is kept. Both directions use the
same list, so import and export can never disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch


def _compile(template: str) -> re.Pattern[str]:
    return re.compile(re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)"))


class KeyMap:
    """Bidirectional prefix renaming; `rules` are (ours, theirs) templates, `{i}` a layer index."""

    def __init__(self, rules: Iterable[tuple[str, str]], *, leaf_renames: Iterable[tuple[str, str]] = ()) -> None:
        self.rules = [(ours, theirs, _compile(ours), _compile(theirs)) for ours, theirs in rules]
        self.leaf_renames = list(leaf_renames)  # (ours, theirs) suffixes, e.g. weight-norm parameter names

    def _translate(self, key: str, forward: bool) -> str | None:
        for ours, theirs, ours_re, theirs_re in self.rules:
            pattern, target = (ours_re, theirs) if forward else (theirs_re, ours)
            match = pattern.match(key)
            if match is None:
                continue
            prefix = target.replace("{i}", match.groupdict().get("i") or "")
            rest = key[match.end():]
            for our_leaf, their_leaf in self.leaf_renames:
                src, dst = (our_leaf, their_leaf) if forward else (their_leaf, our_leaf)
                if rest == src:
                    rest = dst
            return prefix + rest
        return None

    def to_theirs(self, key: str) -> str | None:
        """Our key -> their key, or None when no rule applies."""
        return self._translate(key, forward=True)

    def to_ours(self, key: str) -> str | None:
        """Their key -> our key, or None when no rule applies."""
        return self._translate(key, forward=False)

    def import_state_dict(
        self, theirs: Mapping[str, torch.Tensor], *, ignore: Iterable[str] = ()
    ) -> dict[str, torch.Tensor]:
        """Rename every key of `theirs`; keys matching no rule raise ValueError (listing them), except those
        starting with a prefix in `ignore`."""
        ignore = tuple(ignore)
        out: dict[str, torch.Tensor] = {}
        unknown = []
        for key, value in theirs.items():
            ours = self.to_ours(key)
            if ours is None:
                if not key.startswith(ignore):  # startswith(()) is False: nothing ignored
                    unknown.append(key)
                continue
            out[ours] = value
        if unknown:
            raise ValueError(f"{len(unknown)} parameters have no speechssl equivalent: {sorted(unknown)[:10]}")
        return out

    def export_state_dict(self, ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename every key of our state dict; a key without rule raises ValueError."""
        out: dict[str, torch.Tensor] = {}
        for key, value in ours.items():
            theirs = self.to_theirs(key)
            if theirs is None:
                raise ValueError(f"parameter {key!r} has no equivalent in the target layout")
            out[theirs] = value
        return out


def load_exact(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict) with an error that names the source and the missing/unexpected keys."""
    result = model.load_state_dict(dict(state_dict), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f"{source}: weights do not fit the model: missing {result.missing_keys[:10]}, "
            f"unexpected {result.unexpected_keys[:10]}"
        )
