"""Streaming task samples: a split read chunk by chunk and shuffled in a bounded buffer.

:class:`TaskStream` yields the samples of :class:`~climatune.data.samples.TaskSamples`
without holding the split in memory. The plan is plain index arithmetic:

1. The split's anchors are cut into *chunks*: runs of consecutive anchors whose first
   input step falls in the same group of the store's time chunks (about 32 MiB of
   float32 data), never spanning two split blocks.
2. Each epoch the chunk order is shuffled by ``(seed, epoch)``; the anchors, in that
   order, are cut into equal contiguous shares for the DDP ranks (padded by wrapping
   round, as :class:`~torch.utils.data.DistributedSampler` does) and, within a rank, for
   the DataLoader workers. Every sample is read by exactly one worker.
3. A worker reads ``buffer_chunks`` chunks at a time, each as one contiguous window of
   steps (its chunk plus the ``history - 1`` and ``lead`` steps that complete the
   samples at its edges), normalises them once in numpy, and yields their samples in
   random order.

Memory is bounded by ``buffer_chunks`` chunks per worker, whatever the archive's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from climatune.data.normalize import Normalizer
from climatune.data.samples import fill_nan, patch_mask, read_window
from climatune.data.sources import SOURCE, mixing_probabilities
from climatune.data.view import TaskView

__all__ = ["TaskStream", "chunk_starts"]

CHUNK_BYTES = 32 << 20  # normalised float32 bytes per stream chunk, about


class _Piece(NamedTuple):
    """Normalised steps ``start ..`` of one chunk (or share of one) and its anchors."""

    inputs: np.ndarray
    targets: np.ndarray
    start: int
    anchors: np.ndarray


def _step_bytes(view: TaskView) -> int:
    cells = view.fields.sizes["lat"] * view.fields.sizes["lon"]
    names = set(view.inputs) | (set() if view.is_scalar else set(view.targets))
    return 4 * cells * max(1, len(names))


def chunk_starts(view: TaskView, chunk_steps: int | None = None) -> np.ndarray:
    """Time indices where the stream's chunks start.

    A chunk is ``chunk_steps`` steps, or by default a whole number of the store's (Dask)
    time chunks holding about :data:`CHUNK_BYTES`, so reads align with stored chunks.
    """
    n = view.fields.sizes["time"]
    if chunk_steps is not None:
        return np.arange(0, n, max(1, int(chunk_steps)))
    data = view.input_fields()[view.inputs[0]]
    if not data.chunks:
        return np.arange(0, n, max(1, CHUNK_BYTES // _step_bytes(view)))
    sizes = np.asarray(data.chunks[data.get_axis_num("time")])
    per_chunk = max(1, round(CHUNK_BYTES / (float(np.median(sizes)) * _step_bytes(view))))
    return np.concatenate([[0], np.cumsum(sizes)[:-1]])[::per_chunk]


def _systematic(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws of indices with probabilities ``p``, each index drawn ``n p`` times
    rounded up or down (systematic resampling: the shares hold even for few chunks)."""
    edges = np.cumsum(p / p.sum())
    edges[-1] = 1.0
    return np.searchsorted(edges, (rng.random() + np.arange(n)) / n, side="right")


def _share(n: int, parts: int, i: int) -> tuple[int, int]:
    """``[lo, hi)`` of part ``i`` when ``n`` items are cut into ``parts`` near-equal runs."""
    q, r = divmod(n, parts)
    lo = i * q + min(i, r)
    return lo, lo + q + (i < r)


class TaskStream(IterableDataset):
    """The samples of one split, streamed chunk by chunk (see the module docstring).

    Items are the dicts of :class:`~climatune.data.samples.TaskSamples`, or, with
    ``batch_size``, the same dicts already batched (use ``DataLoader(batch_size=None)``):
    batching in the worker saves a copy and makes every rank's batch count equal.

    Parameters
    ----------
    view, split, normalizer
        As for :class:`~climatune.data.samples.TaskSamples`.
    batch_size
        Yield batches of this size (the last of each worker's share may be smaller).
    shuffle
        Shuffle the chunk order by ``(seed, epoch)`` and samples within the buffer.
    buffer_chunks
        Chunks read and shuffled together; memory is about this many chunks per worker.
    chunk_steps
        Steps per chunk; by default whole store chunks of about :data:`CHUNK_BYTES`.
    num_workers
        The DataLoader's workers, for ``len()`` (sharding follows the real workers).
    seed, mask_ratio, mask_patch
        As for :class:`~climatune.data.samples.TaskSamples`.

    Examples
    --------
    >>> stream = TaskStream(view, "train", norm, batch_size=16, num_workers=2)  # doctest: +SKIP
    >>> loader = DataLoader(stream, batch_size=None, num_workers=2)  # doctest: +SKIP
    """

    def __init__(
        self,
        view: TaskView,
        split: str,
        normalizer: Normalizer,
        *,
        batch_size: int | None = None,
        shuffle: bool = True,
        buffer_chunks: int = 4,
        chunk_steps: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        mask_ratio: float = 0.5,
        mask_patch: int = 4,
        source_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        if buffer_chunks < 1 or (batch_size is not None and batch_size < 1):
            raise ValueError(f"bad stream sizes: {buffer_chunks=}, {batch_size=}")
        self.view, self.split, self.normalizer = view, split, normalizer
        self.batch_size, self.shuffle, self.buffer_chunks = batch_size, shuffle, buffer_chunks
        self.num_workers, self.seed, self.mask_patch = num_workers, seed, mask_patch
        self.mask_ratio = mask_ratio if view.kind == "reconstruct" else 0.0
        self.anchors = np.asarray(view.anchors[split])
        self.labels = (
            np.asarray(view.fields[SOURCE].values) if SOURCE in view.fields.coords else None
        )
        self.chunks = self._cut(chunk_starts(view, chunk_steps))
        self.chunk_p = self._chunk_probabilities(source_weights)
        self.epoch = 0
        self._rank_world = (0, 1)

    # -- plan ------------------------------------------------------------------------------
    def _cut(self, starts: np.ndarray) -> list[np.ndarray]:
        """Runs of consecutive anchors whose first input step lies in one stream chunk."""
        a = self.anchors
        first = a - self.view.history + 1
        chunk = np.searchsorted(starts, first, side="right") - 1
        cut = (np.diff(a) != 1) | (np.diff(chunk) != 0)
        if self.labels is not None:  # a chunk never mixes two sources
            cut |= self.labels[a[1:]] != self.labels[a[:-1]]
        cuts = np.flatnonzero(cut) + 1
        return [c for c in np.split(a, cuts) if c.size]

    def _chunk_probabilities(self, weights: dict[str, float] | None) -> np.ndarray | None:
        """With source weights, each chunk's chance of being drawn: its samples' share."""
        if not weights or self.labels is None or not self.chunks:
            return None
        per_sample = mixing_probabilities(self.labels[self.anchors], weights)
        sizes = np.cumsum([0] + [c.size for c in self.chunks])
        return np.add.reduceat(per_sample, sizes[:-1])

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch`` next (Lightning calls this through the loader's sampler)."""
        self.epoch = int(epoch)
        self._rank_world = self._distributed()

    def _distributed(self) -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return self._rank_world

    def _per_rank(self, world: int) -> int:
        return -(-self.anchors.size // world)

    def __len__(self) -> int:
        """Samples (or, with ``batch_size``, batches) that this rank yields per epoch."""
        self._rank_world = self._distributed()
        per_rank = self._per_rank(self._rank_world[1])
        if self.batch_size is None:
            return per_rank
        workers = max(1, self.num_workers)
        shares = (_share(per_rank, workers, w) for w in range(workers))
        return sum(-(-(hi - lo) // self.batch_size) for lo, hi in shares)

    def plan(
        self, epoch: int, rank: int = 0, world: int = 1, worker: int = 0, workers: int = 1
    ) -> list[np.ndarray]:
        """The anchor runs one worker of one rank reads in ``epoch``, in reading order.

        Each run lies in one chunk; the runs of all workers of all ranks cover the split
        once (plus the wrap-around padding that evens out the ranks).
        """
        n = len(self.chunks)
        if n == 0:
            return []
        rng = np.random.default_rng((self.seed, epoch))
        if self.shuffle and self.chunk_p is not None:  # sources mixed by their weights
            order = rng.permutation(_systematic(self.chunk_p, n, rng))
        else:
            order = rng.permutation(n) if self.shuffle else np.arange(n)
        anchors = np.concatenate([self.chunks[i] for i in order])
        chunk = np.repeat(order, [self.chunks[i].size for i in order])
        per_rank = self._per_rank(world)
        lo, hi = _share(per_rank, workers, worker)
        take = (rank * per_rank + np.arange(lo, hi)) % anchors.size
        mine, ids = anchors[take], chunk[take]
        cuts = np.flatnonzero((np.diff(ids) != 0) | (np.diff(mine) != 1)) + 1
        return [run for run in np.split(mine, cuts) if run.size]

    # -- reading ---------------------------------------------------------------------------
    def _read(self, run: np.ndarray) -> _Piece:
        start = int(run[0]) - self.view.history + 1
        stop = int(self.view.target_index(int(run[-1]))) + 1
        inputs, targets = read_window(self.view, self.normalizer, slice(start, stop))
        return _Piece(inputs, targets, start, run)

    def _sample(self, piece: _Piece, j: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Views of sample ``j`` of ``piece``: inputs ``[history, V, H, W]``, target, anchor."""
        a = int(piece.anchors[j])
        o = a - piece.start
        t = int(self.view.target_index(a)) - piece.start
        return piece.inputs[o - self.view.history + 1 : o + 1], piece.targets[t], a

    def _collate(self, items: list[tuple[np.ndarray, np.ndarray, int]]) -> dict[str, torch.Tensor]:
        first = items[0][0]
        fields = np.empty(
            (len(items), first.shape[1], first.shape[0], *first.shape[2:]), np.float32
        )
        for i, (f, _, _) in enumerate(items):
            fields[i] = f.swapaxes(0, 1)
        fill_nan(fields)  # as TaskSamples: NaN in is 0, a missing field stays NaN
        anchors = [a for _, _, a in items]
        if self.mask_ratio:
            for i, a in enumerate(anchors):
                fields[i] *= patch_mask(
                    self.seed, a, fields.shape[-2:], self.mask_patch, self.mask_ratio
                )
        return {
            "fields": torch.from_numpy(fields),
            "target": torch.from_numpy(np.stack([t for _, t, _ in items])),
            "anchor": torch.tensor(anchors, dtype=torch.int64),
        }

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rank, world = self._distributed()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        runs = self.plan(self.epoch, rank, world, worker, workers)
        rng = np.random.default_rng((self.seed, self.epoch, rank, worker))
        size = self.batch_size or 1
        pending: list[tuple[np.ndarray, np.ndarray, int]] = []
        for g in range(0, len(runs), self.buffer_chunks):
            buffer = [self._read(run) for run in runs[g : g + self.buffer_chunks]]
            which = np.repeat(np.arange(len(buffer)), [p.anchors.size for p in buffer])
            pos = np.concatenate([np.arange(p.anchors.size) for p in buffer])
            if self.shuffle:
                perm = rng.permutation(which.size)
                which, pos = which[perm], pos[perm]
            for k, j in zip(which, pos):
                pending.append(self._sample(buffer[k], j))
                if len(pending) == size:
                    yield self._unbatch(self._collate(pending))
                    pending = []
            # copy the few leftovers so that this buffer can be freed before the next read
            pending = [(f.copy(), t.copy(), a) for f, t, a in pending]
            del buffer
        if pending:
            yield self._unbatch(self._collate(pending))

    def _unbatch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batch if self.batch_size is not None else {k: v[0] for k, v in batch.items()}
