"""What each family is known for, as functions over model-space tensors.

One small module per task; each asks the family which capability protocols it implements
(`trilemma.families.capabilities`) and picks its method from the answer, never from the
family's name. A family lacking what a task needs gets `UnsupportedRequest` with one sentence.

- `masks`: which pixels an inpainting request hides.
- `inversion`: deterministic DDIM sampling and inversion for denoisers.
- `inpainting`: RePaint (diffusion), clamped encode/decode (VAE), latent optimisation (GAN).
- `interpolation`: spherical interpolation paths and their smoothness.
- `editing`: image-to-image (SDEdit) and denoising; VAE reconstruction as the counterpart.
- `superresolution`: ×2 upscaling with an unconditional denoiser (ILVR).
- `files`: reading the user's image files against a run and writing results.
"""
