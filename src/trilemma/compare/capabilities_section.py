"""`compare --capabilities`: what each trained family can do beyond sampling, measured on the
same held-out images for every family, and the report section that shows it.

For every family that declares the capability (`trilemma.capabilities`, by protocol):
inpainting of the same centre-masked held-out images (the domain classifier's label recovery,
known pixels kept exactly), an interpolation path between the same real image pairs with its
smoothness, the sweep of the fidelity/diversity knob (GAN truncation, VAE temperature, guidance
of a conditional diffusion model), anomaly AUROC against uniform noise, and, for conditional
runs, class agreement and the augmentation table.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from trilemma.compare import table_capabilities
from trilemma.data import Dataset
from trilemma.device import sampling_generator
from trilemma.errors import UnsupportedRequest
from trilemma.images import image_grid

INPAINT_N = 50  # held-out images inpainted by each family (the first 8 are shown)
PAIRS, PATH_STEPS = 4, 8
ANOMALY_N = 200  # held-out images and as many uniform-noise images


def _pixels(normalizer: Any, x: torch.Tensor) -> np.ndarray:
    return normalizer.from_model(x.detach().cpu().float())  # uint8 NHWC


def _labels_recovered(dataset: Dataset, pixels: np.ndarray, labels: np.ndarray) -> float | None:
    from trilemma.capabilities.interpolation import smoothness_extractor

    extractor = smoothness_extractor(dataset.name, dataset.sample_shape)
    if extractor is None:
        return None
    probabilities = extractor.probabilities(torch.from_numpy(pixels.transpose(0, 3, 1, 2).copy()))
    return float((probabilities.argmax(axis=1) == labels).mean())


def measure(runs: dict[str, Any], dataset: Dataset, *, conditional: bool, seed: int = 0,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every capability measurement for the loaded runs (`trilemma.sampling.load_run`)."""
    from trilemma import capabilities as scoring
    from trilemma.capabilities import methods
    from trilemma.capabilities.inpainting import inpaint
    from trilemma.capabilities.interpolation import interpolate, smoothness, smoothness_extractor
    from trilemma.capabilities.masks import make_mask

    if dataset.kind == "table":
        return table_capabilities.measure(runs, dataset, conditional=conditional, seed=seed, log=log)
    if dataset.kind != "image":
        return {"skipped": "the capabilities section is measured on images and tables"}
    rng = np.random.default_rng(seed)
    # A random draw in random order, so that the 8 shown and the interpolation pairs mix classes
    # (held-out sets may be stored class by class).
    index = rng.choice(len(dataset.x_heldout), min(INPAINT_N, len(dataset.x_heldout)), replace=False)
    real = dataset.x_heldout[index]
    real_pixels = real.permute(0, 2, 3, 1).numpy()
    labels = dataset.y_heldout[index].numpy() if dataset.y_heldout is not None else None
    x_model = dataset.normalizer.to_model(real)
    _, h, w = dataset.sample_shape
    mask = make_mask("center", len(index), h, w)
    hidden = mask[:, 0].numpy()[..., None]  # (N, H, W, 1)
    section: dict[str, Any] = {"methods": {}, "inpainting": {}, "interpolation": {}, "sweeps": {},
                               "anomaly": {}, "n_inpaint": len(index)}
    masked = np.where(hidden, 128, real_pixels).astype(np.uint8)
    rows = [real_pixels[:8], masked[:8]]
    extractor = smoothness_extractor(dataset.name, dataset.sample_shape)
    pairs = x_model[: 2 * PAIRS].view(PAIRS, 2, *x_model.shape[1:])
    for name, run in runs.items():
        family = run.family
        section["methods"][name] = methods(family)
        device = family.device
        # Inpainting: the same masked images for every family; known pixels put back exactly.
        log(f"capabilities: {name} inpainting {len(index)} centre-masked held-out images")
        started = time.perf_counter()
        filled = inpaint(family, x_model.to(device), mask.to(device), sampling_generator(seed),
                         labels=torch.from_numpy(labels).to(device) if family.conditional and labels is not None else None)
        seconds = time.perf_counter() - started
        pixels = np.where(hidden, _pixels(run.normalizer, filled), real_pixels).astype(np.uint8)
        section["inpainting"][name] = {
            "label_recovery": _labels_recovered(dataset, pixels, labels) if labels is not None else None,
            "known_pixels_identical": bool((pixels[~np.broadcast_to(hidden, pixels.shape)]
                                            == real_pixels[~np.broadcast_to(hidden, pixels.shape)]).all()),
            "seconds_per_image": seconds / len(index),
            "method": section["methods"][name]["inpaint"],
        }
        rows.append(pixels[:8])
        # Interpolation between the same real image pairs.
        log(f"capabilities: {name} interpolating {PAIRS} pairs of held-out images")
        path = interpolate(family, sampling_generator(seed), images=pairs.to(device), steps=PATH_STEPS)
        path_pixels = _pixels(run.normalizer, path.images.flatten(0, 1)).reshape(
            PAIRS, PATH_STEPS, *real_pixels.shape[1:])
        smooth = smoothness(path_pixels, extractor)
        section["interpolation"][name] = {**smooth.to_json(), "method": path.method,
                                          "strip": _png(image_grid(path_pixels[0], columns=PATH_STEPS), 3)}
        # The fidelity/diversity knob, where the family has one.
        try:
            knob = scoring.knob_of(family)
        except UnsupportedRequest as why:
            section["sweeps"][name] = {"unavailable": str(why)}
        else:
            log(f"capabilities: {name} sweeping its {knob.name}")
            section["sweeps"][name] = scoring.fidelity_sweep(run, dataset, n=400, seed=seed)
        # Anomaly: held-out digits against uniform noise.
        log(f"capabilities: {name} anomaly scores, held-out images against uniform noise")
        section["anomaly"][name] = _noise_auroc(family, dataset, seed)
    section["inpainting_grid"] = _png(image_grid(np.concatenate(rows), columns=8), 3)
    section["inpainting_rows"] = ["real", "masked", *runs]
    if conditional:
        section["conditional"] = {}
        for name, run in runs.items():
            log(f"capabilities: {name} class agreement")
            result = scoring.conditional_accuracy(run, dataset, per_class=50, seed=seed, cas=False)
            section["conditional"][name] = {"agreement": result["agreement"],
                                            "per_class_agreement": result["per_class_agreement"]}
        log("capabilities: augmentation table (100 real labelled images, with and without samples)")
        section["augmentation"] = scoring.augmentation_table(list(runs.values()), dataset, seeds=(0,))
    return section


def _noise_auroc(family: Any, dataset: Dataset, seed: int) -> dict[str, Any]:
    from trilemma.capabilities import anomaly_scores, auroc
    from trilemma.capabilities.anomaly import draw_reference

    n = min(ANOMALY_N, len(dataset.x_heldout))
    real = dataset.x_heldout[np.random.default_rng(seed).choice(len(dataset.x_heldout), n, replace=False)]
    noise = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, real.shape, dtype=np.uint8))
    x = dataset.normalizer.to_model(torch.cat([real, noise])).to(family.device)
    reference = draw_reference(dataset, seed=seed).to(family.device)
    scores = anomaly_scores(family, x, reference=reference, seed=seed)["score"]
    truth = np.r_[np.zeros(n), np.ones(n)]
    return {"auroc_uniform_noise": auroc(scores, truth), "n": n}


def _png(picture: np.ndarray, scale: int) -> str:
    """A PNG of the picture, base64-encoded so that the section is plain JSON."""
    from PIL import Image

    image = Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _e(text: Any) -> str:
    return html.escape(str(text))


def _fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def render(section: dict[str, Any], img: Callable[[bytes, str], str]) -> str:
    """The report's capabilities section; `img` embeds PNG bytes."""
    if "skipped" in section:
        return f"<h2>Capabilities</h2><p>{_e(section['skipped'])}</p>"
    if section.get("kind") == "table":
        return table_capabilities.render(section)
    families = list(section["methods"])
    tasks = list(next(iter(section["methods"].values())))
    parts = ["<h2>Capabilities</h2>", ("<p>What each family can do beyond sampling, read from the "
                                       "capability protocols it implements (– where it cannot).</p>"),
             "<table><tr><th>task</th>" + "".join(f"<th>{_e(n)}</th>" for n in families) + "</tr>"
             + "".join(f"<tr><th>{_e(t)}</th>" + "".join(f"<td>{_e(section['methods'][n][t] or '–')}</td>"
                                                          for n in families) + "</tr>" for t in tasks)
             + "</table>"]
    inpainting = section["inpainting"]
    parts += [f"<h3>Inpainting the centre of the same {section['n_inpaint']} held-out images</h3>",
              f"<p>Rows: {', '.join(_e(r) for r in section['inpainting_rows'])}.</p>",
              img(base64.b64decode(section["inpainting_grid"]), "inpainting side by side"),
              "<table><tr><th>family</th><th>method</th><th>label recovered by the domain classifier</th>"
              "<th>known pixels identical</th><th>seconds per image</th></tr>"
              + "".join(f"<tr><td>{_e(n)}</td><td>{_e(r['method'])}</td><td class=\"num\">{_fmt(r['label_recovery'])}</td>"
                        f"<td>{'yes' if r['known_pixels_identical'] else 'NO'}</td>"
                        f"<td class=\"num\">{_fmt(r['seconds_per_image'], '.3f')}</td></tr>"
                        for n, r in inpainting.items()) + "</table>"]
    parts.append("<h3>Interpolation between the same real images</h3>")
    for name, r in section["interpolation"].items():
        parts.append(f"<p><b>{_e(name)}</b> ({_e(r['method'])}): smoothness {r['smoothness']:.2f} "
                     f"(mean step / largest step in {_e(r['features'])} features; 1 = even steps), "
                     f"path length / direct distance {r['path_ratio']:.2f}</p>"
                     + img(base64.b64decode(r["strip"]), f"{name} interpolation"))
    parts.append(_sweeps(section["sweeps"], img))
    parts += ["<h3>Anomaly detection: held-out images against uniform noise</h3>",
              "<table><tr><th>family</th><th>score</th><th>AUROC</th></tr>"
              + "".join(f"<tr><td>{_e(n)}</td><td>{_e(section['methods'][n]['anomaly score'])}</td>"
                        f"<td class=\"num\">{r['auroc_uniform_noise']:.3f}</td></tr>"
                        for n, r in section["anomaly"].items()) + "</table>",
              ("<p class=\"note\">A typicality score is the distance of an image's statistics from their "
               "distribution over 1,000 training images, so images more likely than the data (a blank page) "
               "count as anomalous too. Leave-one-class-out AUROC needs a model trained without that class: "
               "<code>trilemma train --data mnist:classes=1-9 …</code> then "
               "<code>trilemma anomaly RUN --data mnist --anomalous-classes 0</code>.</p>")]
    if "conditional" in section:
        parts += ["<h3>Conditional generation</h3><table><tr><th>family</th><th>samples classified as the "
                  "requested class</th></tr>" + "".join(
                      f"<tr><td>{_e(n)}</td><td class=\"num\">{r['agreement']:.3f}</td></tr>"
                      for n, r in section["conditional"].items()) + "</table>"]
        table = section["augmentation"]
        parts += ["<h3>Generated data as augmentation (100 real labelled images)</h3><table><tr><th>training set"
                  "</th><th>held-out accuracy</th><th>gain over real only</th></tr>" + "".join(
                      f"<tr><td>{_e(r['source'])}</td><td class=\"num\">{r['mean']:.3f}</td>"
                      f"<td class=\"num\">{_fmt(r.get('gain'), '+.3f')}</td></tr>" for r in table["rows"]) + "</table>"]
    return "\n".join(parts)


def _sweeps(sweeps: dict[str, Any], img: Callable[[bytes, str], str]) -> str:
    from trilemma.compare import figures

    available = {n: s for n, s in sweeps.items() if "rows" in s}
    notes = "".join(f"<li>{_e(n)}: {_e(s['unavailable'])}</li>" for n, s in sweeps.items() if "unavailable" in s)
    parts = ["<h3>The fidelity/diversity knob</h3>"]
    if available:
        parts.append(img(figures.knob_sweeps(available), "knob sweeps"))
        for name, s in available.items():
            parts.append(f"<p><b>{_e(name)}</b>, {_e(s['knob'])} (neutral {s['neutral']:g}; {_e(s['sharper'])} "
                         "is sharper): " + "; ".join(
                             f"{r['value']:g}: precision {r['precision']:.3f}, recall {r['recall']:.3f}"
                             for r in s["rows"]) + "</p>")
    if notes:
        parts.append(f"<ul>{notes}</ul>")
    return "\n".join(parts)
