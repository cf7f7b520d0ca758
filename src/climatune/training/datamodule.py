"""Lightning DataModule over a :class:`~climatune.data.view.TaskView`.

A split whose block fits in memory is read once into :class:`TaskSamples`; a larger one
(or any, with ``in_memory="never"``) is streamed chunk by chunk by :class:`TaskStream`.

The loader overlaps the training step: ``num_workers`` processes assemble batches while
the network trains (persistent across epochs for in-memory splits), and on a CUDA
accelerator batches come in pinned memory, so that Lightning's copy to the GPU is
asynchronous (``non_blocking``) instead of a synchronous pageable copy.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Sampler

from climatune.data.normalize import Normalizer
from climatune.data.samples import (
    EpochShuffleSampler,
    SourceMixSampler,
    TaskSamples,
    block_nbytes,
)
from climatune.data.sources import SOURCE, mixing_probabilities
from climatune.data.stream import TaskStream
from climatune.data.view import TaskView

__all__ = ["ClimateDataModule", "IN_MEMORY_BYTES"]

IN_MEMORY_BYTES = 2 << 30  # with in_memory="auto", larger split blocks are streamed


class ClimateDataModule(pl.LightningDataModule):
    """Train/val/test loaders of one task, in memory or streamed.

    Parameters
    ----------
    view, normalizer
        The task and its fitted statistics.
    batch_size, num_workers, seed
        Loader settings; the shuffle order depends only on ``(seed, epoch)``.
    mask_ratio, mask_patch
        Patch masking of ``reconstruct`` tasks.
    in_memory
        ``"always"``: read each split once into memory; ``"never"``: stream it;
        ``"auto"``: stream splits whose block exceeds :data:`IN_MEMORY_BYTES`.
    shuffle_buffer_chunks
        Chunks a stream shuffles together (its memory is about this many chunks per worker).
    """

    def __init__(
        self,
        view: TaskView,
        normalizer: Normalizer,
        *,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        mask_ratio: float = 0.5,
        mask_patch: int = 4,
        in_memory: Literal["auto", "always", "never"] = "auto",
        shuffle_buffer_chunks: int = 4,
        source_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.view, self.normalizer = view, normalizer
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.mask_ratio, self.mask_patch = mask_ratio, mask_patch
        self.in_memory, self.shuffle_buffer_chunks = in_memory, shuffle_buffer_chunks
        self._splits: dict[str, TaskSamples | TaskStream] = {}
        self.source_weights = source_weights

    @property
    def pin_memory(self) -> bool:
        """Whether batches are pinned: when the trainer this module serves runs on CUDA."""
        trainer = getattr(self, "trainer", None)
        return trainer is not None and isinstance(trainer.accelerator, CUDAAccelerator)

    def streams(self, split: str) -> bool:
        """Whether ``split`` is streamed rather than held in memory."""
        if self.in_memory != "auto":
            return self.in_memory == "never"
        return block_nbytes(self.view, split) > IN_MEMORY_BYTES

    def samples(self, split: str) -> TaskSamples | TaskStream:
        """The (cached) dataset of ``split``: in memory, or a batched stream."""
        if split not in self._splits:
            common: dict[str, Any] = dict(
                mask_ratio=self.mask_ratio, mask_patch=self.mask_patch, seed=self.seed
            )
            if self.streams(split):
                self._splits[split] = TaskStream(
                    self.view,
                    split,
                    self.normalizer,
                    batch_size=self.batch_size,
                    shuffle=split == "train",
                    buffer_chunks=self.shuffle_buffer_chunks,
                    num_workers=self.num_workers,
                    source_weights=self.source_weights,
                    **common,
                )
            else:
                self._splits[split] = TaskSamples(self.view, split, self.normalizer, **common)
        return self._splits[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.samples(split)
        if isinstance(data, TaskStream):
            # Workers are not persistent so that each epoch's fork sees the new epoch.
            loader = DataLoader(
                data, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory
            )
            # Lightning calls ``set_epoch`` on a loader's sampler each epoch; an iterable
            # dataset's loader has a stand-in sampler, which passes the call on here.
            loader.sampler.set_epoch = data.set_epoch  # type: ignore[attr-defined]
            return loader
        sampler: Sampler[int] | None = None
        if shuffle:
            sampler = self._mixing(data) or EpochShuffleSampler(len(data), self.seed)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def _mixing(self, data: TaskSamples) -> SourceMixSampler | None:
        """A sampler that mixes the sources by their weights, for a multi-source view."""
        if not self.source_weights or SOURCE not in self.view.fields.coords:
            return None
        labels = np.asarray(self.view.fields[SOURCE].values)[data.anchors]
        return SourceMixSampler(mixing_probabilities(labels, self.source_weights), self.seed)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
