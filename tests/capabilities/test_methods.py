from trilemma.capabilities import methods


def test_each_family_declares_what_it_can_do(families):
    assert methods(families["diffusion"]) == {"interpolate": "DDIM inversion + slerp", "inpaint": "repaint",
                                              "img2img": "sdedit", "denoise": "sdedit", "upscale": "ilvr",
                                              "anomaly score": "typicality of the denoising error averaged over timesteps",
                                              "fidelity knob": None}  # unconditional: no guidance
    assert methods(families["vae"]) == {"interpolate": "posterior mean + slerp", "inpaint": "clamped encode-decode",
                                        "img2img": "reconstruction", "denoise": "reconstruction", "upscale": None,
                                        "anomaly score": "typicality of the IWAE negative log-likelihood (nats), "
                                                         "reconstruction error, KL and posterior entropy",
                                        "fidelity knob": "temperature"}
    assert methods(families["gan"]) == {"interpolate": "latent slerp", "inpaint": "latent optimisation",
                                        "img2img": None, "denoise": None, "upscale": None,
                                        "anomaly score": "negative discriminator logit", "fidelity knob": "truncation"}


def test_an_object_without_capabilities_can_do_nothing():
    assert set(methods(object()).values()) == {None}
