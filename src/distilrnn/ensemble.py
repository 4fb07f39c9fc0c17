"""Teacher ensembles: several fine-tuned teachers label the transfer set, and the student learns
their combined prediction (multi-teacher distillation).

The members are the main teacher plus `teacher.ensemble_seeds` (the backbone fine-tuned again
with other seeds) and `teacher.ensemble_checkpoints` (other already fine-tuned classifiers of
the same labels and tokenizer vocabulary). `TeacherEnsemble` has the surface of a `Teacher`
(`logits`, `evaluate`, `check_fits`, `label_names`, `task_type`), so labelling, calibration and
prediction files take either.

How members combine (`label.ensemble`):

- `probabilities` (default): the ensemble's logits are log(mean_m softmax(z_m)), the log of the
  mixture of the members' distributions, which is how an ensemble's prediction is usually
  formed (Hinton et al. 2015 average the members' distributions; Lakshminarayanan et al. 2017).
  The log of a distribution is a valid logit vector whose softmax is that distribution, so
  everything that reads logits keeps its meaning: `kl` matches softmax(log p / T), the mixture
  tempered (Hinton et al. 2015), temperature scaling (`temperature = "auto"`) calibrates the
  mixture, argmax is the mixture's vote. `mse` then regresses on log-probabilities (each row's
  logits shifted so that they normalise), which carry the same information as logits.
- `logits`: the mean of the members' logits, softmax of which is the normalised geometric mean
  of the members' distributions: sharper where members agree, and sensitive to the scale of
  each member's logits (a member with larger logits weighs more).
- A regression ensemble (one output) averages its members' scores under either rule.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from distilrnn.config import ENSEMBLE_COMBINES, TeacherConfig
from distilrnn.data import Split, Task
from distilrnn.errors import ConfigError, TeacherError
from distilrnn.inputs import Input, split_inputs
from distilrnn.teacher import Teacher, evaluate_teacher

logger = logging.getLogger(__name__)

COMBINES = ENSEMBLE_COMBINES
# the teacher settings that add members: not part of any one member's fingerprint
ENSEMBLE_SETTINGS = ("ensemble_seeds", "ensemble_checkpoints")


def combine_logits(
    member_logits: Sequence[np.ndarray], combine: str = "probabilities"
) -> np.ndarray:
    """The ensemble's logits from its members': each `(n, num_labels)`, the result float32
    `(n, num_labels)`. `probabilities`: log of the mean of the members' softmax (computed in
    float64 as logsumexp_m log_softmax(z_m) - log M, so it stays finite however confident a
    member is); `logits`: the mean logit. One column (regression): the mean score."""
    _check_combine(combine)
    if not member_logits:
        raise ValueError("an ensemble needs at least one member's logits")
    stacked = np.stack([np.asarray(z, dtype=np.float64) for z in member_logits])  # (M, n, L)
    if stacked.ndim != 3:
        raise ValueError(f"member logits must each be (n, num_labels), got {stacked.shape[1:]}")
    if combine == "logits" or stacked.shape[2] == 1:
        return stacked.mean(axis=0).astype(np.float32)
    log_probabilities = stacked - _logsumexp(stacked, axis=2)  # (M, n, L) log-softmax
    mixture = _logsumexp(log_probabilities, axis=0)[0] - np.log(len(member_logits))  # (n, L)
    return mixture.astype(np.float32)


def _check_combine(combine: str) -> None:
    if combine not in COMBINES:
        raise ConfigError(f"label.ensemble: must be one of {', '.join(COMBINES)}, got {combine!r}")


def _logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(values))) along `axis`, kept as a size-1 axis; max-shifted for stability."""
    top = values.max(axis=axis, keepdims=True)
    return top + np.log(np.exp(values - top).sum(axis=axis, keepdims=True))


# compatibility of members ------------------------------------------------------------------------
def _label_key(teacher: Teacher) -> list[str] | None:
    """A member's label names as they must agree (lower case); None for generic `LABEL_i`."""
    names = [name.lower() for name in teacher.label_names]
    return None if all(n == f"label_{i}" for i, n in enumerate(names)) else names


def vocabulary_problem(
    tokenizer: PreTrainedTokenizerBase, reference: PreTrainedTokenizerBase
) -> str | None:
    """What differs between two tokenizers' vocabularies (token -> id), or None when equal.

    Members must read the same token ids: the student shares the main teacher's tokenizer and
    the transfer set is generated with it (its mask token, its word pieces)."""
    mine, theirs = tokenizer.get_vocab(), reference.get_vocab()
    if mine == theirs:
        return None
    if len(mine) != len(theirs):
        return f"its vocabulary has {len(mine)} tokens, the main teacher's {len(theirs)}"
    moved = sorted(token for token, index in mine.items() if theirs.get(token) != index)
    return (
        f"its vocabulary differs from the main teacher's in {len(moved)} tokens "
        f"(e.g. {', '.join(map(repr, moved[:3]))})"
    )


def member_problem(member: Teacher, reference: Teacher) -> str | None:
    """Why `member` cannot join an ensemble with `reference` (the main teacher): another task
    type, label count, label names or tokenizer vocabulary; None when it can."""
    if member.task_type != reference.task_type:
        return f"it is a {member.task_type} model, the main teacher a {reference.task_type} one"
    if member.num_labels != reference.num_labels:
        return f"it has {member.num_labels} labels, the main teacher {reference.num_labels}"
    mine, theirs = _label_key(member), _label_key(reference)
    if mine is not None and theirs is not None and mine != theirs:
        return f"its labels {mine} are not the main teacher's {theirs}"
    return vocabulary_problem(member.tokenizer, reference.tokenizer)


class TeacherEnsemble:
    """Several teachers of one task read as one: `logits` are the members' combined
    (`combine_logits`), `evaluate` scores them, and the label names, task type and tokenizer
    are those of the first member (the main teacher), which every other must share.

        ensemble = TeacherEnsemble([Teacher.from_pretrained(a), Teacher.from_pretrained(b)])
        ensemble.logits(["a fine film"])  # (1, num_labels): log of the mean softmax
    """

    def __init__(
        self, members: Sequence[Teacher], combine: str = "probabilities", name: str | None = None
    ):
        _check_combine(combine)
        if not members:
            raise TeacherError("a teacher ensemble needs at least one member")
        self.members = list(members)
        self.combine = combine
        main = self.members[0]
        for member in self.members[1:]:
            problem = member_problem(member, main)
            if problem:
                raise TeacherError(
                    f"teacher {member.name} cannot join {main.name}'s ensemble: {problem}"
                )
        self.name = name or f"ensemble of {len(self.members)} ({combine})"

    def __repr__(self) -> str:
        names = ", ".join(repr(m.name) for m in self.members)
        return f"TeacherEnsemble([{names}], combine={self.combine!r})"

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[Teacher]:
        return iter(self.members)

    @property
    def main(self) -> Teacher:
        return self.members[0]

    @property
    def label_names(self) -> list[str]:
        return self.main.label_names

    @property
    def num_labels(self) -> int:
        return self.main.num_labels

    @property
    def task_type(self) -> str:
        return self.main.task_type

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.main.tokenizer

    @property
    def max_length(self) -> int:
        return self.main.max_length

    @classmethod
    def from_pretrained(
        cls,
        names_or_dirs: Sequence[str | Path],
        *,
        combine: str = "probabilities",
        trust_remote_code: bool = False,
        max_length: int = 128,
    ) -> TeacherEnsemble:
        """Fine-tuned classifiers (folders or hub ids), the first the main teacher."""
        members = [
            Teacher.from_pretrained(
                name, trust_remote_code=trust_remote_code, max_length=max_length
            )
            for name in names_or_dirs
        ]
        return cls(members, combine)

    def member_logits(
        self,
        texts: Sequence[Input],
        *,
        text_pairs: Sequence[str] | None = None,
        batch_size: int = 512,
        max_tokens: int = 8192,
        device: torch.device | str = "cpu",
        precision: str = "fp32",
    ) -> list[np.ndarray]:
        """Each member's logits, `(len(texts), num_labels)` float32, in member order."""
        if text_pairs is None:
            texts, text_pairs = split_inputs(texts)
        return [
            member.logits(
                texts,
                text_pairs=text_pairs,
                batch_size=batch_size,
                max_tokens=max_tokens,
                device=device,
                precision=precision,
            )
            for member in self.members
        ]

    def combined(self, member_logits: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's logits from its members' own (`member_logits`, model order), combined
        as this ensemble combines them (`combine_logits`)."""
        return combine_logits(member_logits, self.combine)

    def logits(
        self,
        texts: Sequence[Input],
        *,
        text_pairs: Sequence[str] | None = None,
        batch_size: int = 512,
        max_tokens: int = 8192,
        device: torch.device | str = "cpu",
        progress: bool | tqdm = False,
        precision: str = "fp32",
    ) -> np.ndarray:
        """The combined logits for `texts` (as `Teacher.logits` takes them): float32
        `(len(texts), num_labels)`; every member reads every text. `progress`: True shows a
        bar, a `tqdm` bar is advanced by `len(texts)` once all members are done."""
        bar = (
            tqdm(total=len(texts), desc="teacher ensemble", unit="text")
            if progress is True
            else progress or None
        )
        members = self.member_logits(
            texts,
            text_pairs=text_pairs,
            batch_size=batch_size,
            max_tokens=max_tokens,
            device=device,
            precision=precision,
        )
        if bar is not None:
            bar.update(len(texts))
            if progress is True:
                bar.close()
        return self.combined(members)

    def evaluate(
        self,
        data: Split | Dataset | tuple[Sequence[Input], Sequence[float]],
        *,
        metrics: Sequence[str] = (),
        batch_size: int = 128,
        device: torch.device | str = "cpu",
    ) -> dict[str, float]:
        """The combined prediction's scores, as `Teacher.evaluate` gives them."""
        return evaluate_teacher(self, data, metrics, batch_size, device)

    def check_fits(self, task: Task) -> None:
        """Raise `TeacherError` unless every member fits the task (`Teacher.check_fits`)."""
        for member in self.members:
            member.check_fits(task)


# the members a config names ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Member:
    """An extra member of the configured ensemble: a seed to fine-tune the backbone with, or an
    already fine-tuned checkpoint. `name` is its folder's suffix in the run (`seed-43`,
    `checkpoint-<name>-<digest>`), fixed by what it is, not by its place in the list."""

    name: str
    seed: int | None = None
    checkpoint: str = ""

    @property
    def setting(self) -> str:
        """The setting that adds it, for error messages."""
        return "teacher.ensemble_checkpoints" if self.checkpoint else "teacher.ensemble_seeds"

    def config(self, teacher: TeacherConfig) -> TeacherConfig:
        """The main teacher's settings with this member's seed or checkpoint, and no members."""
        values: dict[str, Any] = {key: [] for key in ENSEMBLE_SETTINGS}
        if self.checkpoint:
            values["checkpoint"] = self.checkpoint
        else:
            values.update(seed=self.seed, checkpoint="")
        return dataclasses.replace(teacher, **values)


def _checkpoint_name(checkpoint: str) -> str:
    """A folder-safe name for a checkpoint: its last path part and a digest of the whole."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(checkpoint.rstrip("/\\")).name).strip("-.")
    digest = hashlib.sha256(checkpoint.encode()).hexdigest()[:8]
    return f"checkpoint-{stem[:40] or 'model'}-{digest}"


def ensemble_members(teacher: TeacherConfig) -> list[Member]:
    """The extra members `teacher` configures: checkpoints first (no training, so a misfit is
    found before any fine-tuning), then seeds."""
    return [
        *(Member(_checkpoint_name(c), checkpoint=c) for c in teacher.ensemble_checkpoints),
        *(Member(f"seed-{s}", seed=s) for s in teacher.ensemble_seeds),
    ]


def check_member(member: Teacher, main: Teacher, task: Task, setting: str) -> None:
    """Raise a `ConfigError` naming `setting` and the member unless it fits the task and can
    join the main teacher's ensemble."""
    try:
        member.check_fits(task)
    except TeacherError as error:
        raise ConfigError(f"{setting}: {member.name}: {error}") from None
    problem = member_problem(member, main)
    if problem:
        raise ConfigError(f"{setting}: {member.name} cannot join the ensemble: {problem}")


def split_predictions(
    member_predictions: Sequence[dict[str, np.ndarray]], combine: str
) -> dict[str, np.ndarray]:
    """The ensemble's logits per split from its members' saved ones (`{split: (n, labels)}`)."""
    splits = member_predictions[0].keys()
    return {
        split: combine_logits([p[split] for p in member_predictions], combine) for split in splits
    }
