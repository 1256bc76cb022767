"""Settings that shrink each family's networks for the tests that train every family: the
families' own defaults are sized for minutes of training, these for seconds."""

SMALL = {
    "vae": {"base_width": 8},
    "gan": {"base_width": 8},
    "diffusion": {"channels": (8, 16)},
    "flow": {"channels": (8, 16)},
    "ddgan": {"channels": (8, 16), "discriminator_width": 8},
    "latent-diffusion": {"base_width": 8, "prior_width": 32},
}

# Sampling options that keep the iterative families to a few network evaluations, and the
# evaluations each then costs per sample (one-pass families: no options, 1 evaluation).
FEW_STEPS = {
    "diffusion": ({"steps": 3}, 3),
    "flow": ({"steps": 2, "sampler": "euler"}, 2),
    "latent-diffusion": ({"steps": 2, "sampler": "euler"}, 3),  # and the decoder
    "ddgan": ({}, 4),  # T = 4 steps
}


def few_steps(name: str) -> tuple[dict, int]:
    return FEW_STEPS.get(name, ({}, 1))
