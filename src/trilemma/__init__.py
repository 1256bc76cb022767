"""trilemma: train GANs, VAEs and diffusion models on the same data under the same budget,
and measure the trade-offs."""

__version__ = "0.1.0"
