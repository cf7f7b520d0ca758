"""Lightning DataModule over a :class:`~climatune.data.view.TaskView`."""

from __future__ import annotations

import lightning.pytorch as pl
from torch.utils.data import DataLoader

from climatune.data.normalize import Normalizer
from climatune.data.samples import EpochShuffleSampler, TaskSamples
from climatune.data.view import TaskView

__all__ = ["ClimateDataModule"]


class ClimateDataModule(pl.LightningDataModule):
    """Train/val/test loaders of one task; each split's block is read once, lazily on setup."""

    def __init__(
        self, view: TaskView, normalizer: Normalizer, *, batch_size: int = 16, num_workers: int = 0,
        seed: int = 0, mask_ratio: float = 0.5, patch: int = 4,
    ) -> None:
        super().__init__()
        self.view, self.normalizer = view, normalizer
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.mask_ratio, self.patch = mask_ratio, patch
        self._splits: dict[str, TaskSamples] = {}

    def samples(self, split: str) -> TaskSamples:
        """The (cached) dataset of ``split``."""
        if split not in self._splits:
            self._splits[split] = TaskSamples(
                self.view, split, self.normalizer, mask_ratio=self.mask_ratio, patch=self.patch, seed=self.seed
            )
        return self._splits[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        data = self.samples(split)
        sampler = EpochShuffleSampler(len(data), self.seed) if shuffle else None
        return DataLoader(
            data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
