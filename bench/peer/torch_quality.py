"""The PyTorch quality peer of veritune's quality benchmark (issue 15): what a
PyTorch user would get from the same meta-model and the same verified images.

For every run that `veritune bench quality --peer-data DIR` wrote (one per N
and seed, see src/benchmark/peer.rs), it fine-tunes the meta-model on the
run's images with their verified boxes, by a standard recipe, and writes the
weights back beside the run; `veritune bench quality --peer-results DIR`
then measures them on the held-out scenes with veritune's own mAP code.

Usage (from the repository root, with the python of scripts/bench-peer-venv):

    torch_quality.py --dir DIR [--epochs 30] [--batch 8] [--threads 1] [--only n20-s0]

The recipe, "ultralytics": plain fine-tuning (the transfer images only, no
history: veritune's `transfer-only`), as Ultralytics' trainer does it for a
small dataset:

- AdamW (`optimizer=auto` on fewer than 10,000 iterations): learning rate
  0.002 * 5 / (4 + classes), betas (0.9, 0.999), weight decay 5e-4;
- a linear warm-up over the first 3 epochs, then a cosine from the peak to a
  hundredth of it (`cos_lr=True`, `lrf=0.01`);
- augmentation drawn anew every epoch, with Ultralytics' default gains:
  mosaic of four images (all epochs but the last 10, `close_mosaic=10`), a
  random scale (0.5 to 1.5) and translation (up to 10 % of the side), HSV
  jitter (hue 0.015, saturation 0.7, value 0.4); no flip (digits change when
  mirrored); boxes cut to the image, dropped below 2 pixels or a tenth of
  their area;
- the detector's own loss (the port in torch_speed.py, term by term
  veritune's), batch 8.

Each run is seeded with its benchmark seed. Prints one line per run; writes
`peer.safetensors` (the fine-tuned weights, the meta-model's names and
metadata) and `peer.json` (the recipe and its settings) into each run folder.
"""

import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_speed import ADAM_BETAS, fail, load_model, read_tensors  # noqa: E402

RECIPE = "ultralytics"
WEIGHT_DECAY = 5e-4
WARMUP_EPOCHS = 3
FINAL_LR_FACTOR = 0.01
CLOSE_MOSAIC = 10
SCALE_GAIN = 0.5
TRANSLATE = 0.1
HSV_GAINS = (0.015, 0.7, 0.4)
#: Ultralytics' padding grey.
PAD = 114 / 255


def log(message):
    print(f"torch_quality: {message}", file=sys.stderr, flush=True)


def peak_learning_rate(classes):
    """Ultralytics' `optimizer=auto` learning rate for AdamW."""
    return round(0.002 * 5 / (4 + classes), 6)


def learning_rate(epoch_progress, epochs, peak):
    """Warm-up then cosine, at a fractional epoch."""
    if epoch_progress < WARMUP_EPOCHS:
        return peak * (epoch_progress + 1e-3) / WARMUP_EPOCHS
    t = (epoch_progress - WARMUP_EPOCHS) / max(epochs - WARMUP_EPOCHS, 1e-9)
    return peak * (FINAL_LR_FACTOR + (1 - FINAL_LR_FACTOR) * (1 + math.cos(math.pi * min(t, 1.0))) / 2)


def rgb_to_hsv(rgb):
    r, g, b = rgb
    high, low = rgb.max(0), rgb.min(0)
    delta = high - low
    safe = np.where(delta > 0, delta, 1)
    hue = np.where(high == r, ((g - b) / safe) % 6, np.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = np.where(delta > 0, hue / 6, 0)
    saturation = np.where(high > 0, delta / np.where(high > 0, high, 1), 0)
    return np.stack([hue, saturation, high])


def hsv_to_rgb(hsv):
    h, s, v = hsv
    i = np.floor(h * 6) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.stack([np.select([i == k for k in range(6)], [c[channel] for c in choices])
                     for channel in range(3)])


def hsv_jitter(image, rng):
    gains = rng.uniform(-1, 1, 3) * HSV_GAINS + 1
    h, s, v = rgb_to_hsv(image)
    return np.clip(hsv_to_rgb(np.stack([(h * gains[0]) % 1.0, np.clip(s * gains[1], 0, 1),
                                        np.clip(v * gains[2], 0, 1)])), 0, 1)


def mosaic(images, targets, indices, size, rng):
    """Four images around a random centre of a 2x canvas (Ultralytics'
    `Mosaic`), with their boxes."""
    canvas = np.full((3, 2 * size, 2 * size), PAD, dtype=np.float32)
    cx, cy = (int(rng.uniform(size / 2, 3 * size / 2)) for _ in range(2))
    boxes = []
    for quadrant, index in enumerate(indices):
        image = images[index]
        if quadrant == 0:
            x0, y0 = max(cx - size, 0), max(cy - size, 0)
            x1, y1 = cx, cy
            sx0, sy0 = size - (x1 - x0), size - (y1 - y0)
        elif quadrant == 1:
            x0, y0, x1, y1 = cx, max(cy - size, 0), min(cx + size, 2 * size), cy
            sx0, sy0 = 0, size - (y1 - y0)
        elif quadrant == 2:
            x0, y0, x1, y1 = max(cx - size, 0), cy, cx, min(cy + size, 2 * size)
            sx0, sy0 = size - (x1 - x0), 0
        else:
            x0, y0, x1, y1 = cx, cy, min(cx + size, 2 * size), min(cy + size, 2 * size)
            sx0, sy0 = 0, 0
        canvas[:, y0:y1, x0:x1] = image[:, sy0:sy0 + (y1 - y0), sx0:sx0 + (x1 - x0)]
        dx, dy = x0 - sx0, y0 - sy0
        for box, cls in targets[index]:
            boxes.append((box + np.array([dx, dy, dx, dy], dtype=np.float32), cls))
    return canvas, boxes


def affine(image, boxes, size, rng):
    """Random scale and translation of `image` (any square side) onto a
    `size` square, centred (Ultralytics' `random_perspective` without
    rotation, shear or perspective), with the boxes kept as it keeps them."""
    side = image.shape[1]
    scale = rng.uniform(1 - SCALE_GAIN, 1 + SCALE_GAIN)
    tx, ty = (rng.uniform(0.5 - TRANSLATE, 0.5 + TRANSLATE) * size for _ in range(2))
    # Output point u (pixels, 0..size) samples input point (u - tx) / scale +
    # side / 2; in grid_sample's coordinates (-1..1 across each image,
    # align_corners=False) that is u_n * size / (scale * side) + (size - 2 tx) / (scale * side).
    k = size / (scale * side)
    theta = torch.tensor([[[k, 0.0, (size - 2 * tx) / (scale * side)],
                           [0.0, k, (size - 2 * ty) / (scale * side)]]], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, 3, size, size], align_corners=False)
    source = torch.from_numpy(np.ascontiguousarray(image))[None] - PAD
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0] + PAD
    kept = []
    for box, cls in boxes:
        moved = (box - side / 2) * scale + np.array([tx, ty, tx, ty], dtype=np.float32)
        cut = np.clip(moved, 0, size)
        w, h = cut[2] - cut[0], cut[3] - cut[1]
        area = (moved[2] - moved[0]) * (moved[3] - moved[1])
        if w > 2 and h > 2 and w * h > 0.1 * area and max(w / h, h / w) < 100:
            kept.append((cut.astype(np.float32), cls))
    return out.numpy(), kept


def augmented(images, targets, index, size, use_mosaic, rng):
    if use_mosaic:
        others = rng.integers(0, len(images), 3)
        image, boxes = mosaic(images, targets, [index, *others], size, rng)
    else:
        image, boxes = images[index], targets[index]
    image, boxes = affine(image, boxes, size, rng)
    return hsv_jitter(image, rng).astype(np.float32), boxes


def fine_tune(run_dir, meta_path, spec, epochs, batch):
    with open(os.path.join(run_dir, "run.json")) as f:
        run = json.load(f)
    seed = run["seed"]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = load_model("fcos-small", meta_path)
    images = read_tensors(os.path.join(run_dir, "images.safetensors")).get("images")
    if images is None:
        fail(f"{run_dir}/images.safetensors has no tensor 'images'")
    images = images.float().numpy()
    size = spec["input_size"][0]
    with open(os.path.join(run_dir, "targets.json")) as f:
        targets = [[(np.array(b["bbox"], dtype=np.float32), int(b["class"])) for b in image]
                   for image in json.load(f)]
    if len(targets) != len(images):
        fail(f"{run_dir}: {len(targets)} target lists for {len(images)} images")
    mean = torch.tensor(spec["preprocessing"]["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(spec["preprocessing"]["std"]).view(1, 3, 1, 1)

    peak = peak_learning_rate(model.classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=peak, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)
    batches = math.ceil(len(images) / batch)
    start = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        use_mosaic = epoch < epochs - CLOSE_MOSAIC
        for b in range(batches):
            chosen = order[b * batch:(b + 1) * batch]
            pairs = [augmented(images, targets, i, size, use_mosaic, rng) for i in chosen]
            x = (torch.from_numpy(np.stack([p[0] for p in pairs])) - mean) / std
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(epoch + b / batches, epochs, peak)
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(model(x), [p[1] for p in pairs])
            if math.isfinite(loss.item()):
                loss.backward()
                optimizer.step()
    seconds = time.perf_counter() - start

    with safe_open(meta_path, "pt") as f:
        metadata = f.metadata() or {}
    tensors = {name: t.detach().contiguous() for name, t in model.state_dict().items()}
    save_file(tensors, os.path.join(run_dir, "peer.safetensors"), metadata=metadata)
    with open(os.path.join(run_dir, "peer.json"), "w") as f:
        json.dump({"recipe": RECIPE, "epochs": epochs, "batch": batch, "peak_learning_rate": peak,
                   "weight_decay": WEIGHT_DECAY, "seconds": seconds, "torch_version": torch.__version__}, f)
    log(f"{os.path.basename(run_dir)}: {epochs} epochs in {seconds:.0f} s, last loss {loss.item():.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="folder written by veritune bench quality --peer-data")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", action="append", help="run folder names to fine-tune (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    meta_path = os.path.join(args.dir, "weights.safetensors")
    with open(os.path.join(args.dir, "spec.json")) as f:
        spec = json.load(f)
    runs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(args.dir, "*", "run.json")))
    if args.only:
        runs = [r for r in runs if os.path.basename(r) in args.only]
    if not runs:
        fail(f"{args.dir} holds no run: write them with veritune bench quality --peer-data")
    for run_dir in runs:
        fine_tune(run_dir, meta_path, spec, args.epochs, args.batch)


if __name__ == "__main__":
    main()
