"""Our DINOv2 against an independent implementation: transformers' Dinov2Model with the same
random weights, converted from the torch.hub checkpoint layout our loader reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from trilemma.errors import DataError
from trilemma.metrics.features.dinov2 import DinoV2Extractor

transformers = pytest.importorskip("transformers")


def _hub_state(model) -> dict[str, torch.Tensor]:
    """transformers' Dinov2Model weights renamed to the torch.hub checkpoint's keys."""
    hf = model.state_dict()
    state = {"cls_token": hf["embeddings.cls_token"], "mask_token": hf["embeddings.mask_token"],
             "pos_embed": hf["embeddings.position_embeddings"],
             "patch_embed.proj.weight": hf["embeddings.patch_embeddings.projection.weight"],
             "patch_embed.proj.bias": hf["embeddings.patch_embeddings.projection.bias"],
             "norm.weight": hf["layernorm.weight"], "norm.bias": hf["layernorm.bias"]}
    for i in range(model.config.num_hidden_layers):
        a, b = f"encoder.layer.{i}.", f"blocks.{i}."
        # transformers 5 names the projections q_proj ... o_proj; earlier versions query ... output.dense.
        new = a + "attention.q_proj.weight" in hf
        names = (("q_proj", "k_proj", "v_proj", "o_proj") if new else
                 ("attention.query", "attention.key", "attention.value", "output.dense"))
        for part in ("weight", "bias"):
            state[b + f"attn.qkv.{part}"] = torch.cat([hf[a + f"attention.{n}.{part}"] for n in names[:3]])
            state[b + f"attn.proj.{part}"] = hf[a + f"attention.{names[3]}.{part}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                state[b + f"{name}.{part}"] = hf[a + f"{name}.{part}"]
        state[b + "ls1.gamma"] = hf[a + "layer_scale1.lambda1"]
        state[b + "ls2.gamma"] = hf[a + "layer_scale2.lambda1"]
    return {k: v.contiguous() for k, v in state.items()}


def _random_model(flat_positions: bool):
    config = transformers.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                                       patch_size=14, image_size=518, layer_norm_eps=1e-6, hidden_act="gelu")
    torch.manual_seed(0)
    model = transformers.Dinov2Model(config).eval()
    with torch.no_grad():  # every weight random, LayerScale included
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (1.0 if "position" in name or "layer_scale" in name else 0.05))
        if flat_positions:  # one position for every patch: any resizing of the grid leaves it as it is
            model.embeddings.position_embeddings[:, 2:] = model.embeddings.position_embeddings[:, 1:2]
    return model


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """transformers' model with random positions, and ours from the same weights (as a hub file)."""
    model = _random_model(flat_positions=False)
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vits14_pretrain.safetensors"
    save_file(_hub_state(model), str(path))
    return model, path


def _imagenet(x: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def test_dinov2_class_token_matches_transformers_on_its_own_grid(reference):
    """At 518 pixels (the 37 x 37 grid the positions were learnt for) nothing is resized."""
    model, path = reference
    extractor = DinoV2Extractor(path)
    assert extractor.name == "dinov2-vits14" and extractor.dim == 384
    noise = torch.rand(2, 3, 518, 518, generator=torch.Generator().manual_seed(0))
    x = _imagenet(0.2 * noise + torch.tensor([0.0, 0.8]).view(2, 1, 1, 1))  # a dark image and a light one
    with torch.no_grad():
        ours = extractor.model(x)
        theirs = model(pixel_values=x).pooler_output
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
    assert (ours - ours.mean(0)).abs().max() > 1e-2  # the images give different features


def test_dinov2_features_of_small_images_match_transformers(tmp_path):
    """The whole extractor: [0, 1], bicubic 224 x 224, ImageNet normalisation, class token. The
    positions are made equal, since the two resize them differently: transformers 5 to the new
    grid's size, the reference code (as dgm-eval runs it) by the factor (16 + 0.1) / 37, as we do."""
    model = _random_model(flat_positions=True)
    save_file(_hub_state(model), str(tmp_path / "flat.safetensors"))
    low = np.array([0, 90, 180]).reshape(3, 1, 1, 1)  # a dark, a mid-grey and a light image
    images = (low + np.random.default_rng(0).integers(0, 70, (3, 32, 32, 3))).astype(np.uint8)
    ours = DinoV2Extractor(tmp_path / "flat.safetensors").features(images)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=True)
    with torch.no_grad():
        theirs = model(pixel_values=_imagenet(x)).pooler_output.double().numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    assert np.abs(ours - ours.mean(0)).max() > 1e-2


def test_a_dinov2_file_with_registers_or_missing_keys_is_named(reference, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(reference[1]))
    save_file({**state, "register_tokens": torch.zeros(1, 4, 384)}, str(tmp_path / "reg.safetensors"))
    with pytest.raises(DataError, match=r"reg\.safetensors: DINOv2 with register tokens is not supported"):
        DinoV2Extractor(tmp_path / "reg.safetensors")
    del state["blocks.3.ls1.gamma"]
    save_file(state, str(tmp_path / "short.safetensors"))
    with pytest.raises(DataError, match=r"short\.safetensors: not a DINOv2 vits14 checkpoint \(missing: blocks\.3\.ls1"):
        DinoV2Extractor(tmp_path / "short.safetensors")


def test_dinov2_is_found_in_the_hub_cache_or_named(reference, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from trilemma.data import load_data
    from trilemma.evaluation.features import extractor_for_dataset

    np.save(tmp_path / "images.npy", np.random.default_rng(0).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    dataset = load_data(str(tmp_path / "images.npy"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DataError, match=r"--features dinov2: no dinov2_vitb14_pretrain\.pth or dinov2_vits14_pretrain\.pth"):
        extractor_for_dataset(dataset, "dinov2")
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(load_file(str(reference[1])), checkpoints / "dinov2_vits14_pretrain.pth")  # as torch.hub leaves it
    said = []
    found = extractor_for_dataset(dataset, "dinov2", log=said.append)
    assert isinstance(found, DinoV2Extractor) and found.name == "dinov2-vits14"
    assert "no published hash" in said[0] and found.weights_sha256[:12] in said[0]
    named = extractor_for_dataset(dataset, str(checkpoints / "dinov2_vits14_pretrain.pth"), log=said.append)
    assert isinstance(named, DinoV2Extractor) and named.weights_sha256 == found.weights_sha256
    assert found.features(dataset.x_heldout[:2]).shape == (2, 384)
