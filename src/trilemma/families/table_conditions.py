"""CTGAN's conditional vector and training-by-sampling (Xu et al. 2019, §4.3), for a GAN on a
table's rows.

Each generated row is conditioned on one category of one categorical column: the vector is the
concatenation of every categorical block, 1 on the chosen category and 0 elsewhere. In training
the column is drawn uniformly and the category in proportion to the log of its frequency, so that
rare categories are shown to both networks far more often than their share of the rows; the real
row the discriminator sees beside it is one that has that category, and the generator is also
penalised by the cross-entropy between its block and the chosen category. At sampling time the
category is drawn at its real frequency, so the sample keeps the data's proportions.

Frequencies are counted over the training batches (`CategoryCounts`, saved with the model).
The real row is drawn from the batch at hand, weighted so that each category present is drawn at
its log-frequency share: a category absent from a batch is skipped in that batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.families.table_layout import Layout, segments


def categorical_slices(layout: Layout) -> list[slice]:
    return [where for kind, where in segments(layout) if kind == "categorical"]


class ConditionSampler(nn.Module):
    """Draws conditional vectors for a table's GAN and keeps the category counts they need."""

    def __init__(self, layout: Layout):
        super().__init__()
        self.blocks = categorical_slices(layout)
        self.width = sum(s.stop - s.start for s in self.blocks)
        self.register_buffer("counts", torch.zeros(self.width, dtype=torch.float64))
        offsets, start = [], 0
        for s in self.blocks:
            offsets.append(start)
            start += s.stop - s.start
        self.offsets = offsets

    def active(self) -> bool:
        return self.width > 0

    def vector(self, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Conditional vectors for (column, category-within-column) pairs."""
        offsets = torch.tensor(self.offsets, device=column.device)
        return F.one_hot(offsets[column] + category, self.width).float()

    def training_pairs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For a real batch x: the conditional vectors, the chosen (column, category) per slot
        and the permutation of x whose rows carry those categories (training-by-sampling)."""
        n = len(x)
        codes = torch.stack([x[:, s].argmax(1) for s in self.blocks], dim=1)  # (n, columns)
        with torch.no_grad():
            self.counts += torch.cat([torch.bincount(codes[:, j], minlength=s.stop - s.start).double()
                                      for j, s in enumerate(self.blocks)]).to(self.counts.device)
        column = torch.randint(0, len(self.blocks), (n,), device=x.device)
        weights = torch.empty(len(self.blocks), n, device=x.device)
        for j, s in enumerate(self.blocks):
            in_batch = torch.bincount(codes[:, j], minlength=s.stop - s.start).float()
            log_share = torch.log1p(self.counts[self.offsets[j]:self.offsets[j] + s.stop - s.start]).float().to(x.device)
            # Row i is drawn with weight log-share(its category) / rows of that category here.
            weights[j] = log_share[codes[:, j]] / in_batch[codes[:, j]]
        rows = torch.multinomial(weights[column], 1).squeeze(1)
        category = codes[rows, column]
        return self.vector(column, category), torch.stack([column, category], 1), rows

    def sampling_vectors(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Conditional vectors for sampling: a uniform column, a category at its real frequency."""
        column = torch.randint(0, len(self.blocks), (n,), generator=generator, device=generator.device)
        category = torch.empty(n, dtype=torch.long, device=generator.device)
        for j, s in enumerate(self.blocks):
            chosen = column == j
            if chosen.any():
                share = self.counts[self.offsets[j]:self.offsets[j] + s.stop - s.start].float() + 1e-6
                category[chosen] = torch.multinomial(share.to(generator.device), int(chosen.sum()), replacement=True,
                                                     generator=generator)
        return self.vector(column.to(device), category.to(device))

    def condition_loss(self, raw: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the generator's block logits and each slot's chosen category."""
        loss = raw.new_zeros(())
        for j, s in enumerate(self.blocks):
            rows = chosen[:, 0] == j
            if rows.any():
                loss = loss + F.cross_entropy(raw[rows, s], chosen[rows, 1], reduction="sum")
        return loss / len(raw)
