"""Architectures only: no objectives, no sampling. Families in `trilemma.families` use them."""
