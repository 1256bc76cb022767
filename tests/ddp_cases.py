"""The runs tests/test_distributed.py trains both under DDP and in one process."""

STEPS = 6
# name: (family, data, overrides). Global batches split over 2 ranks; small networks for speed.
CASES = {
    "vae": ("vae", "digits", {"batch_size": 32}),
    "vae-points": ("vae", "ring8", {"batch_size": 64, "mlp_width": 32}),  # log_scale: a loose parameter
    "gan": ("gan", "digits", {"batch_size": 32, "r1_gamma": 1.0,
                              "diffaugment": "translation,cutout,color"}),
    "gan-points": ("gan", "ring8", {"batch_size": 64, "mlp_width": 32}),
    "diffusion": ("diffusion", "digits", {"batch_size": 32, "channels": [8, 16]}),
}
