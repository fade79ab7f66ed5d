"""A demo folder of photo-like JPEGs whose two classes differ visibly, so the lesson's neuron can learn them.

Every picture is a smooth colour background with a few random discs. A picture in a folder named `cat` also
holds an orange cat face (a disc with two ear triangles and dark eyes) near its middle; any other picture holds
a blue-grey box there instead, sometimes partly hidden by a disc. Sizes, positions and shades vary, so a
linear model learns the difference (warm and round against cool and square, near the middle of the frame)
without a perfect score.

    catneuron demo-photos data/photos [--count 400] [--min-px 300] [--max-px 900]    (or: make demo-photos)
"""
import multiprocessing
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pipeline import PipelineError


def make_photo(task):
    """Write one JPEG: task is (path, long side in pixels, seed); its folder's name says the class."""
    path, long_side, seed = task
    rng = np.random.default_rng(seed)
    w, h = (long_side, long_side * 3 // 4) if seed % 2 else (long_side * 3 // 4, long_side)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    distractors = []
    for _ in range(6):  # discs in any colour, anywhere; some will be drawn over the subject
        x, y = rng.integers(0, w), rng.integers(0, h)
        r = int(rng.integers(w // 20, w // 5))
        distractors.append(((x - r, y - r, x + r, y + r), tuple(int(c) for c in rng.integers(0, 256, 3))))
    for box, colour in distractors[:4]:
        draw.ellipse(box, fill=colour)
    side = min(w, h)
    r = int(side * rng.uniform(0.1, 0.22))  # the subject: a fifth to half of the short side wide
    cx, cy = (c // 2 + int(rng.integers(-side // 4, side // 4 + 1)) for c in (w, h))  # near the middle
    shade = int(rng.integers(-70, 71))
    if Path(path).parent.name == "cat":
        fur = (min(255, 235 + shade // 2), 140 + shade, max(0, 40 + shade))  # orange
        for sx in (-1, 1):
            draw.polygon([(cx + sx * r, cy - r // 3), (cx + sx * r // 3, cy - r), (cx + sx * r, cy - 3 * r // 2)],
                         fill=fur)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fur)
        for sx in (-1, 1):
            e = max(1, r // 6)
            ex, ey = cx + sx * r // 2, cy - r // 4
            draw.ellipse((ex - e, ey - e, ex + e, ey + e), fill=(30, 30, 20))
    else:
        box = (60 + shade, 110 + shade, min(255, 190 + shade // 2))  # blue-grey
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=box)
    for box, colour in distractors[4:]:
        draw.ellipse(box, fill=colour)
    image.save(path, quality=90)


def generate(root, count=400, min_px=300, max_px=900, seed=0):
    """count JPEGs under root/cat and root/non-cat (alternately), made in parallel; returns their paths.

    root must not exist: the demo never writes among a user's own photos.
    """
    if Path(root).exists():
        raise PipelineError(f"{root}: already exists; give a new folder for the demo photos")
    if count < 2:
        raise PipelineError(f"--count {count}: must be at least 2 (one photo of each class)")
    if not 16 <= min_px <= max_px:
        raise PipelineError(f"--min-px {min_px} --max-px {max_px}: need 16 <= min-px <= max-px")
    rng = np.random.default_rng(seed)
    tasks = []
    for i in range(count):
        folder = Path(root) / ("cat" if i % 2 else "non-cat")
        folder.mkdir(parents=True, exist_ok=True)
        tasks.append((folder / f"{i:05d}.jpg", int(rng.integers(min_px, max_px + 1)), i))
    with multiprocessing.Pool() as pool:
        pool.map(make_photo, tasks, chunksize=8)
    return [t[0] for t in tasks]
