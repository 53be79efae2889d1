"""The PyTorch peer of veritune's speed benchmark (`veritune bench speed`, issue 7).

It trains the same detectors as veritune, from the same weights, with PyTorch
on the CPU, and times the same operations, so that the benchmark can print
the ratio veritune / PyTorch next to each of its own figures.

Usage (from the repository root, with the python of scripts/bench-peer-venv):

    torch_speed.py --arch fcos-small|nanodet-g --dir DIR --batch B --repeats R
                   [--warmup W] [--threads N]

DIR holds what `veritune bench speed` writes (src/benchmark/speed.rs,
`write_peer_files`):

- `weights.safetensors`: the detector's weights, under PyTorch's conventional
  names, with veritune's configuration in the metadata (`veritune.config`);
- `input.safetensors`: `images`, the preprocessed batch `[B, 3, H, W]`;
- `reference.safetensors`: veritune's forward outputs on it, `class_logits`
  and `box_logits` (fcos-small) or `level.0`..`level.2` (nanodet-g);
- `targets.json`: per image, its boxes `{"bbox": [x0, y0, x1, y1], "class": k}`
  in input pixels (when absent, 1 to 4 random boxes per image, seeded).

The networks are ports of src/detector/fcos.rs and src/detector/nanodet.rs.
Loading is strict (every tensor used, every shape checked), and the forward
outputs must match veritune's within 1e-3 (parity), or the script exits with
an error before timing anything.

Measurements, each from the loaded weights with a fresh Adam, W untimed runs
then R timed ones (milliseconds, `time.perf_counter`):

- `forward`: inference at batch B (`torch.inference_mode`);
- `plain_step`: a training step at batch B: forward, the detector's loss
  with its label assignment, backward, Adam;
- `plain_step_2x`: the same at batch 2B (the batch twice over);
- `mixed_step`: the method's step (METHOD.md section 2; src/trainer.rs
  `TrainingRun::step`, src/mixing.rs): the gradient `g_t` of the loss on the
  transfer batch (the B images) and `g_h` on a history batch (the same images
  flipped left-right, with their boxes), both at the same parameters; the
  statistics `<g_t, g_h>`, `|g_t|^2`, `|g_h|^2` over every parameter, read
  with both losses; the symmetric rule's weights (`MixingRule::weights`), the
  mixed gradient `a_t g_t + a_h g_h`, and Adam's step.

The losses and assignments are the same as veritune's, term by term:
fcos-small's sigmoid focal loss with GIoU and L1 on the exp-decoded side
distances, centre sampling (src/detector/assign.rs `assign`); nanodet-g's
quality focal, distribution focal and GIoU losses weighted by the detached
scores, ATSS (`assign_atss`). As in veritune, the assignment runs on the CPU
inside every step. What differs: veritune builds its input batch from images
inside each step (preprocessing); its plain step is its mixed step with the
`transfer-only` rule, so it also computes the statistics and the mix, which
here a plain step does not; Adam's epsilon is 1e-5 as burn's but burn scales
it by the bias correction; the history batch is another set of random
images in veritune, the flipped transfer batch here (the same cost). Negative
regions (rejected boxes) are not in targets.json, so they are not ported.

Prints one JSON object on stdout (logs go to stderr): arch, batch,
input_size, threads, torch_version, parity (output name: largest absolute
difference), forward_ms, plain_step_ms, plain_step_2x_ms, mixed_step_ms and
peak_rss_bytes (the process's peak resident memory, `ru_maxrss`).
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

#: Largest absolute difference from veritune's outputs the parity check accepts.
PARITY_TOLERANCE = 1e-3
#: Adam's settings in veritune (src/trainer.rs `TrainConfig`, burn's `AdamConfig`).
LEARNING_RATE = 5e-4
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-5
#: Guards the divisions of the box losses (src/detector/loss.rs `EPS`).
EPS = 1e-6


def log(message):
    print(f"torch_speed: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- assignment


class Locations:
    """Cell centres of every output level in input pixels, finest level
    first, each level row-major (src/detector/assign.rs `grid_locations`)."""

    def __init__(self, size, strides):
        xs, ys, ss, self.levels = [], [], [], []
        start = 0
        for stride in strides:
            cells = -(-size // stride)
            centres = (np.arange(cells, dtype=np.float32) + 0.5) * np.float32(stride)
            xs.append(np.tile(centres, cells))
            ys.append(np.repeat(centres, cells))
            ss.append(np.full(cells * cells, stride, dtype=np.float32))
            self.levels.append(slice(start, start + cells * cells))
            start += cells * cells
        self.x, self.y, self.stride = np.concatenate(xs), np.concatenate(ys), np.concatenate(ss)
        self.count = start

    def inside(self, box):
        """Whether each location lies in `box` (edges included)."""
        x0, y0, x1, y1 = box
        return (self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1)

    def squared_distance(self, box):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        return (self.x - cx) ** 2 + (self.y - cy) ** 2


def area(box):
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def centre_sampling(locations, box, radius):
    """`matching_locations`: the locations inside `box` within `radius`
    strides of its centre, else the nearest one; each with the priority
    `-area` (the smaller box wins a shared location)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    r = radius * locations.stride
    near = (np.abs(locations.x - cx) < r) & (np.abs(locations.y - cy) < r)
    matched = np.flatnonzero(locations.inside(box) & near)
    if matched.size == 0:
        matched = np.array([np.argmin(locations.squared_distance(box))])
    return matched, np.full(matched.size, -area(box), dtype=np.float32)


#: Side of the square anchor ATSS gives a location, in strides (assign.rs `ANCHOR_SCALE`).
ANCHOR_SCALE = 5.0


def atss(locations, box, top_k):
    """`atss_locations`: per level the `top_k` locations nearest the box's
    centre; those whose anchor overlaps it by at least the candidates' mean
    IoU plus its deviation, with their centre inside the box; else the best
    candidate (the last of equals). The priority is the IoU."""
    distance = locations.squared_distance(box)
    candidates = np.concatenate([
        level.start + np.argsort(distance[level], kind="stable")[:top_k] for level in locations.levels
    ])
    half = ANCHOR_SCALE * locations.stride[candidates] / 2
    cx, cy = locations.x[candidates], locations.y[candidates]
    inter = (np.clip(np.minimum(cx + half, box[2]) - np.maximum(cx - half, box[0]), 0, None)
             * np.clip(np.minimum(cy + half, box[3]) - np.maximum(cy - half, box[1]), 0, None))
    union = (2 * half) ** 2 + area(box) - inter
    iou = np.where(union > 0, np.clip(inter / np.where(union > 0, union, 1), 0, 1), 0).astype(np.float32)
    mean = iou.mean()
    deviation = math.sqrt(((iou - mean) ** 2).sum() / max(iou.size - 1, 1))
    matched = (iou >= mean + deviation) & locations.inside(box)[candidates]
    if matched.any():
        return candidates[matched], iou[matched]
    best = iou.size - 1 - np.argmax(iou[::-1])
    return candidates[best:best + 1], iou[best:best + 1]


def assign(locations, labels, matches):
    """`assign_by`: the index into `labels` each location is a positive of
    (-1 for background); where boxes compete for a location the highest
    priority wins, the first of equals."""
    owner = np.full(locations.count, -1)
    priority = np.full(locations.count, -np.inf, dtype=np.float32)
    for k, (box, _) in enumerate(labels):
        matched, value = matches(box)
        take = (owner[matched] < 0) | (value > priority[matched])
        owner[matched[take]] = k
        priority[matched[take]] = value[take]
    return owner


def positives(locations, targets, classes, matches):
    """The batch's positives: (image, location, box, class) for every
    location assigned a box of a class the model has."""
    rows = []
    for image, labels in enumerate(targets):
        owner = assign(locations, labels, matches)
        for location in np.flatnonzero(owner >= 0):
            box, cls = labels[owner[location]]
            if cls < classes:
                rows.append((image, location, box, cls))
    return rows


# ---------------------------------------------------------------- losses


def sigmoid_focal_loss(logits, targets, alpha, gamma):
    p = torch.sigmoid(logits)
    ce = -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits))
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = targets * alpha + (1 - targets) * (1 - alpha)
    return alpha_t * (1 - p_t).clamp_min(0).pow(gamma) * ce


def overlaps(pred, target):
    """IoU, union and enclosing-box area of boxes `[.., 4]`, each `[.., 1]`."""
    px0, py0, px1, py1 = pred.split(1, dim=-1)
    tx0, ty0, tx1, ty1 = target.split(1, dim=-1)

    def box_area(x0, y0, x1, y1):
        return (x1 - x0).clamp_min(0) * (y1 - y0).clamp_min(0)

    inter = box_area(torch.maximum(px0, tx0), torch.maximum(py0, ty0), torch.minimum(px1, tx1), torch.minimum(py1, ty1))
    hull = box_area(torch.minimum(px0, tx0), torch.minimum(py0, ty0), torch.maximum(px1, tx1), torch.maximum(py1, ty1))
    union = box_area(px0, py0, px1, py1) + box_area(tx0, ty0, tx1, ty1) - inter
    return inter / (union + EPS), union, hull


def giou_loss(pred, target):
    iou, union, hull = overlaps(pred, target)
    return 1 - (iou - (hull - union) / (hull + EPS))


def quality_focal_loss(logits, targets, beta):
    ce = -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits))
    return (targets - torch.sigmoid(logits)).abs().pow(beta) * ce


def flatten_level(level, start, length):
    """Channels `start..start+length` of `[B, C, H, W]` as `[B, H*W, length]`."""
    batch = level.shape[0]
    return level[:, start:start + length].reshape(batch, length, -1).transpose(1, 2)


# ---------------------------------------------------------------- fcos-small


class ConvBlock(nn.Module):
    """Convolution, GroupNorm (8, 4, 2 or 1 groups), ReLU."""

    def __init__(self, channels_in, channels_out, kernel, stride):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, stride, kernel // 2)
        groups = next(g for g in (8, 4, 2, 1) if channels_out % g == 0)
        self.norm = nn.GroupNorm(groups, channels_out, eps=1e-5)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


class FcosHead(nn.Module):
    def __init__(self, channels, classes):
        super().__init__()
        self.tower = nn.ModuleList([ConvBlock(channels, channels, 3, 1) for _ in range(2)])
        self.classifier = nn.Conv2d(channels, classes, 3, 1, 1)
        self.regressor = nn.Conv2d(channels, 4, 3, 1, 1)


class FcosSmall(nn.Module):
    """src/detector/fcos.rs: nine strided ConvBlocks, a small top-down pyramid
    to stride 8, a two-block tower, class logits and log side distances."""

    STRIDE = 8
    MAX_LOG_DISTANCE = 6.0

    def __init__(self, config):
        super().__init__()
        self.config = config
        w = config["width"]
        self.classes = len(config["class_names"])
        stages = [(3, w, 2), (w, 2 * w, 2), (2 * w, 2 * w, 1), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1),
                  (4 * w, 8 * w, 2), (8 * w, 8 * w, 1), (8 * w, 8 * w, 2), (8 * w, 8 * w, 1)]
        self.backbone = nn.ModuleList([ConvBlock(i, o, 3, s) for i, o, s in stages])
        self.lateral_c3 = nn.Conv2d(4 * w, 4 * w, 1)
        self.lateral_c4 = nn.Conv2d(8 * w, 4 * w, 1)
        self.lateral_c5 = nn.Conv2d(8 * w, 4 * w, 1)
        self.smooth = ConvBlock(4 * w, 4 * w, 3, 1)
        self.head = FcosHead(4 * w, self.classes)
        self.locations = Locations(config["input_size"], [self.STRIDE])

    def forward(self, images):
        features = []
        x = images
        for block in self.backbone:
            x = block(x)
            features.append(x)
        c3, c4, c5 = features[4], features[6], features[8]

        def up(t):
            return F.interpolate(t, scale_factor=2.0, mode="nearest")

        p4 = self.lateral_c4(c4) + up(self.lateral_c5(c5))
        tower = self.smooth(self.lateral_c3(c3) + up(p4))
        for block in self.head.tower:
            tower = block(tower)
        return {"class_logits": self.head.classifier(tower), "box_logits": self.head.regressor(tower)}

    def loss(self, outputs, targets):
        """`Fcos::loss`: focal loss over every location and class, GIoU and L1
        on the positives, each normalised by the number of positives."""
        config, loc = self.config, self.locations
        batch, n = len(targets), loc.count
        rows = positives(loc, targets, self.classes, lambda box: centre_sampling(loc, box, config["center_radius"]))
        classes = np.zeros((batch, n, self.classes), dtype=np.float32)
        positive = np.zeros((batch, n, 1), dtype=np.float32)
        boxes = np.zeros((batch, n, 4), dtype=np.float32)
        distances = np.zeros((batch, n, 4), dtype=np.float32)
        for image, j, box, cls in rows:
            classes[image, j, cls] = 1
            positive[image, j] = 1
            boxes[image, j] = box
            x, y, stride = loc.x[j], loc.y[j], loc.stride[j]
            sides = np.array([x - box[0], y - box[1], box[2] - x, box[3] - y], dtype=np.float32)
            distances[image, j] = np.maximum(sides, 0) / stride
        normaliser = max(len(rows), 1)
        positive = torch.from_numpy(positive)

        logits = flatten_level(outputs["class_logits"], 0, self.classes)
        classification = sigmoid_focal_loss(
            logits, torch.from_numpy(classes), config["focal_alpha"], config["focal_gamma"]).sum() / normaliser
        predicted = flatten_level(outputs["box_logits"], 0, 4).clamp_max(self.MAX_LOG_DISTANCE).exp()
        centres = torch.from_numpy(np.stack([loc.x, loc.y, loc.x, loc.y], axis=1))[None]
        signs = torch.tensor([-1.0, -1.0, 1.0, 1.0])
        decoded = centres + predicted * self.STRIDE * signs
        giou = (giou_loss(decoded, torch.from_numpy(boxes)) * positive).sum() / normaliser
        l1 = ((predicted - torch.from_numpy(distances)).abs() * positive).sum() / normaliser
        return classification + config["giou_weight"] * giou + config["l1_weight"] * l1


# ---------------------------------------------------------------- nanodet-g


def conv(channels_in, channels_out, kernel, stride=1):
    return nn.Conv2d(channels_in, channels_out, kernel, stride, kernel // 2)


def act(x):
    return F.leaky_relu(x, 0.1)


class TinyResBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.in_conv = conv(channels, channels // 2, 3)
        self.mid_conv = conv(channels // 2, channels // 2, 3)

    def forward(self, x):
        a = act(self.in_conv(x))
        return torch.cat([act(self.mid_conv(a)), a], 1)


class CspBlock(nn.Module):
    def __init__(self, channels, blocks, stride):
        super().__init__()
        self.in_conv = conv(channels, channels, 3, stride)
        self.res_blocks = nn.ModuleList([TinyResBlock(channels) for _ in range(blocks)])
        self.res_out_conv = conv(channels, channels, 3)

    def forward(self, x):
        x = act(self.in_conv(x))
        y = x
        for block in self.res_blocks:
            y = block(y)
        return torch.cat([act(self.res_out_conv(y)), x], 1)


class CspNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv(3, 32, 3, 2)
        self.stage2 = CspBlock(32, 1, 1)
        self.stage3 = CspBlock(64, 2, 2)
        self.stage4 = CspBlock(128, 2, 2)
        self.stage5 = CspBlock(256, 3, 2)

    def forward(self, x):
        x = F.max_pool2d(act(self.stem(x)), 3, 2, 1)
        c3 = self.stage3(self.stage2(x))
        c4 = self.stage4(c3)
        return c3, c4, self.stage5(c4)


class Pan(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.lateral = nn.ModuleList([conv(c, features, 1) for c in (128, 256, 512)])

    def forward(self, c3, c4, c5):
        def up(x, like):
            return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)

        l0, l1, l2 = self.lateral[0](c3), self.lateral[1](c4), self.lateral[2](c5)
        l1 = l1 + up(l2, l1)
        p3 = l0 + up(l1, l0)
        p4 = l1 + F.avg_pool2d(p3, 2, 2)
        p5 = l2 + F.avg_pool2d(p4, 2, 2)
        return p3, p4, p5


class NanoDetHead(nn.Module):
    def __init__(self, features, outputs, levels):
        super().__init__()
        self.cls_convs = nn.ModuleList([conv(features, features, 3) for _ in range(levels)])
        self.gfl_cls = nn.ModuleList([conv(features, outputs, 1) for _ in range(levels)])


class NanoDetG(nn.Module):
    """src/detector/nanodet.rs: CSP backbone, PAN neck, GFL head per level,
    34 dense convolutions with folded BatchNorm, LeakyReLU 0.1."""

    STRIDES = (8, 16, 32)
    REG_MAX = 10
    BINS = REG_MAX + 1
    FEATURES = 128

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.classes = len(config["class_names"])
        self.backbone = CspNet()
        self.neck = Pan(self.FEATURES)
        self.head = NanoDetHead(self.FEATURES, self.classes + 4 * self.BINS, len(self.STRIDES))
        self.locations = Locations(config["input_size"], self.STRIDES)

    def forward(self, images):
        features = self.neck(*self.backbone(images))
        return {f"level.{i}": out(act(tower(p)))
                for i, (p, tower, out) in enumerate(zip(features, self.head.cls_convs, self.head.gfl_cls))}

    def loss(self, outputs, targets):
        """`NanoDet::loss`: quality focal loss towards the IoU of each
        positive's decoded box; GIoU and distribution focal loss on the
        positives weighted by their detached top score."""
        config, loc, bins = self.config, self.locations, self.BINS
        batch, n = len(targets), loc.count
        rows = positives(loc, targets, self.classes, lambda box: atss(loc, box, config["atss_top_k"]))
        classes = np.zeros((batch, n, self.classes), dtype=np.float32)
        positive = np.zeros((batch, n, 1), dtype=np.float32)
        boxes = np.zeros((batch, n, 4), dtype=np.float32)
        soft_bins = np.zeros((batch, n, 4, bins), dtype=np.float32)
        largest = np.float32(self.REG_MAX - 0.01)
        for image, j, box, cls in rows:
            classes[image, j, cls] = 1
            positive[image, j] = 1
            boxes[image, j] = box
            x, y, stride = loc.x[j], loc.y[j], loc.stride[j]
            sides = np.array([x - box[0], y - box[1], box[2] - x, box[3] - y], dtype=np.float32)
            for side, d in enumerate(np.clip(sides / stride, 0, largest)):
                left = int(d)
                soft_bins[image, j, side, left] = left + 1 - d
                soft_bins[image, j, side, left + 1] = d - left
        positive, boxes = torch.from_numpy(positive), torch.from_numpy(boxes)

        levels = [outputs[f"level.{i}"] for i in range(len(self.STRIDES))]
        logits = torch.cat([flatten_level(level, 0, self.classes) for level in levels], 1)
        distribution = torch.cat([flatten_level(level, self.classes, 4 * bins) for level in levels], 1)
        distribution = distribution.reshape(batch, n, 4, bins)
        distances = (distribution.softmax(3) * torch.arange(bins, dtype=torch.float32)).sum(3)
        centres = torch.from_numpy(np.stack([loc.x, loc.y, loc.x, loc.y], axis=1))[None]
        signed_strides = torch.from_numpy(np.stack([-loc.stride, -loc.stride, loc.stride, loc.stride], axis=1))[None]
        decoded = centres + distances * signed_strides

        quality = overlaps(decoded.detach(), boxes)[0] * positive
        classification = quality_focal_loss(logits, torch.from_numpy(classes) * quality, config["qfl_beta"]).sum()
        classification = classification / max(len(rows), 1) * config["qfl_weight"]
        weight = torch.sigmoid(logits).detach().amax(2, keepdim=True) * positive
        weight_sum = weight.sum().clamp_min(1e-6)
        giou = (giou_loss(decoded, boxes) * weight).sum() / weight_sum
        dfl = -(torch.from_numpy(soft_bins) * distribution.log_softmax(3)).sum(3).sum(2, keepdim=True)
        dfl = (dfl * weight).sum() / (weight_sum * 4)
        return classification + config["giou_weight"] * giou + config["dfl_weight"] * dfl


ARCHITECTURES = {"fcos-small": FcosSmall, "nanodet-g": NanoDetG}


# ---------------------------------------------------------------- files


def fail(message):
    log(f"error: {message}")
    sys.exit(1)


def load_model(arch, path):
    """The detector of `arch` built from the configuration in the weights'
    metadata, with every tensor of the file loaded and checked."""
    with safe_open(path, "pt") as f:
        metadata = f.metadata() or {}
        stored = metadata.get("veritune.architecture")
        if stored != arch:
            fail(f"{path} holds the weights of '{stored}', not of '{arch}'")
        if "veritune.config" not in metadata:
            fail(f"{path} has no veritune.config in its metadata: export it with veritune")
        model = ARCHITECTURES[arch](json.loads(metadata["veritune.config"]))
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        fail(f"{path} does not fit {arch}: missing {missing}, unexpected {unexpected}")
    wrong = [f"{name}: {list(tensors[name].shape)} in the file, {list(t.shape)} in the model"
             for name, t in expected.items() if tensors[name].shape != t.shape]
    if wrong:
        fail(f"{path} does not fit {arch}: " + "; ".join(wrong))
    model.load_state_dict({name: t.float() for name, t in tensors.items()}, strict=True)
    log(f"{arch}: {sum(p.numel() for p in model.parameters()):,} parameters loaded from {path}")
    return model


def read_tensors(path):
    with safe_open(path, "pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}


def read_targets(directory, batch, size, classes):
    """Per image a list of (box, class); random boxes when targets.json is absent."""
    path = os.path.join(directory, "targets.json")
    if os.path.exists(path):
        with open(path) as f:
            targets = [[(np.array(t["bbox"], dtype=np.float32), int(t["class"])) for t in image]
                       for image in json.load(f)]
        if len(targets) != batch:
            fail(f"{path} has targets for {len(targets)} images, the batch has {batch}")
        return targets
    log(f"no {path}: 1 to 4 random boxes per image")
    rng = np.random.default_rng(0)
    targets = []
    for _ in range(batch):
        image = []
        for _ in range(rng.integers(1, 5)):
            w, h = rng.uniform(0.1, 0.5, 2) * size
            x0, y0 = rng.uniform(0, size - w), rng.uniform(0, size - h)
            image.append((np.array([x0, y0, x0 + w, y0 + h], dtype=np.float32), int(rng.integers(classes))))
        targets.append(image)
    return targets


def flipped(images, targets, width):
    """The batch mirrored left-right, with its boxes."""
    return images.flip(3), [[(np.array([width - b[2], b[1], width - b[0], b[3]], dtype=np.float32), c)
                             for b, c in image] for image in targets]


def parity(model, images, reference):
    """Largest absolute difference of each output from veritune's. A
    single-level output may also be named `name.0` in the reference."""
    with torch.inference_mode():
        outputs = model(images)
    aliases = {name: name for name in outputs} | {f"{name}.0": name for name in outputs if "." not in name}
    unknown = sorted(set(reference) - set(aliases))
    absent = sorted(set(outputs) - {aliases[r] for r in reference if r in aliases})
    if unknown or absent:
        fail(f"reference outputs {sorted(reference)} do not match the model's {sorted(outputs)}")
    result = {}
    for name, expected in reference.items():
        actual = outputs[aliases[name]]
        if actual.shape != expected.shape:
            fail(f"output {name}: {list(actual.shape)} here, {list(expected.shape)} in veritune")
        result[name] = (actual - expected).abs().max().item()
    return result


# ---------------------------------------------------------------- steps


def symmetric_weights(dot, norm_t_sq, norm_h_sq):
    """`MixingRule::Symmetric.weights`: the average when the gradients agree,
    else the average of each projected off the other."""
    norms = math.sqrt(norm_t_sq * norm_h_sq)
    similarity = max(-1.0, min(1.0, dot / norms)) if norms > 0 else 0.0
    if similarity >= 0:
        return 0.5, 0.5

    def ratio(num, den):
        return num / den if den > 0 else 0.0

    return (1 - ratio(dot, norm_t_sq)) / 2, (1 - ratio(dot, norm_h_sq)) / 2


class Trainer:
    """A model with its Adam, reset to the loaded weights for each measurement."""

    def __init__(self, model):
        self.model = model
        self.initial = {name: t.clone() for name, t in model.state_dict().items()}
        self.params = list(model.parameters())
        self.reset()

    def reset(self):
        self.model.load_state_dict(self.initial)
        self.optimizer = torch.optim.Adam(self.params, lr=LEARNING_RATE, betas=ADAM_BETAS, eps=ADAM_EPSILON)

    def plain_step(self, images, targets):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.model.loss(self.model(images), targets)
        loss.backward()
        if math.isfinite(loss.item()):
            self.optimizer.step()

    def mixed_step(self, transfer, history):
        """`TrainingRun::step` with the symmetric rule."""
        losses, gradients = [], []
        for images, targets in (transfer, history):
            loss = self.model.loss(self.model(images), targets)
            gradients.append(torch.autograd.grad(loss, self.params))
            losses.append(loss.detach())
        g_t, g_h = gradients
        stats = torch.stack([
            sum((t * h).sum() for t, h in zip(g_t, g_h)),
            sum(t.square().sum() for t in g_t),
            sum(h.square().sum() for h in g_h),
        ])
        values = torch.cat([torch.stack(losses), stats]).tolist()
        if not all(math.isfinite(v) for v in values):
            return
        a_t, a_h = symmetric_weights(*values[2:])
        for p, t, h in zip(self.params, g_t, g_h):
            p.grad = t.mul(a_t).add_(h, alpha=a_h)
        self.optimizer.step()


def timed(run, warmup, repeats):
    """Milliseconds of each of `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", required=True, choices=sorted(ARCHITECTURES))
    parser.add_argument("--dir", required=True, help="folder of the files veritune bench speed writes")
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: os.cpu_count())")
    args = parser.parse_args()
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)

    model = load_model(args.arch, os.path.join(args.dir, "weights.safetensors"))
    images = read_tensors(os.path.join(args.dir, "input.safetensors")).get("images")
    if images is None:
        fail("input.safetensors has no tensor 'images'")
    images = images.float().contiguous()
    size = model.config["input_size"]
    if list(images.shape) != [args.batch, 3, size, size]:
        fail(f"images are {list(images.shape)}, expected [{args.batch}, 3, {size}, {size}]")

    differences = parity(model, images, read_tensors(os.path.join(args.dir, "reference.safetensors")))
    for name, diff in differences.items():
        log(f"parity {name}: max |veritune - PyTorch| = {diff:.2e}")
    off = {name: diff for name, diff in differences.items() if not diff <= PARITY_TOLERANCE}
    if off:
        fail(f"outputs differ from veritune's by more than {PARITY_TOLERANCE}: {off}")

    targets = read_targets(args.dir, args.batch, size, model.classes)
    transfer = (images, targets)
    history = flipped(images, targets, size)
    double = (torch.cat([images, images]), targets + targets)
    trainer = Trainer(model)

    def forward():
        with torch.inference_mode():
            model(images)

    measurements = [
        ("forward_ms", forward),
        ("plain_step_ms", lambda: trainer.plain_step(*transfer)),
        ("plain_step_2x_ms", lambda: trainer.plain_step(*double)),
        ("mixed_step_ms", lambda: trainer.mixed_step(transfer, history)),
    ]
    figures = {}
    for name, run in measurements:
        trainer.reset()
        figures[name] = timed(run, args.warmup, args.repeats)
        log(f"{args.arch} batch {args.batch}, {name[:-3]}: median {np.median(figures[name]):.1f} ms")

    print(json.dumps({
        "arch": args.arch,
        "batch": args.batch,
        "input_size": [size, size],
        "threads": threads,
        "torch_version": torch.__version__,
        "parity": differences,
        **figures,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
