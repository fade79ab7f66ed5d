"""Generated image folders of known pixels, and configs that point at them, for the folder-dataset tests."""
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


def image(rng, size, label):
    """A random (size, size, 3) uint8 picture; cats are redder, so that a neuron can tell them apart."""
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    pixels[..., 0] = pixels[..., 0] // 2 + (128 if label else 0)
    return pixels


def make_folder(root, counts=(("cat", 6), ("non-cat", 4)), size=8, seed=0):
    """Write PNGs (even index) and JPEGs (odd) under root/<class>/; return {relative path: expected pixels}.

    The pictures are already size x size, so the loader's resize leaves them unchanged: the expected
    pixels are the PNG's own, and for a JPEG what Pillow decodes from the file.
    """
    rng = np.random.default_rng(seed)
    expected = {}
    for name, n in counts:
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = image(rng, size, name == "cat")
            path = folder / f"{i:03d}.{'jpg' if i % 2 else 'png'}"
            Image.fromarray(pixels).save(path)
            expected[f"{name}/{path.name}"] = np.asarray(Image.open(path).convert("RGB"))
    return expected


def write_config(path, root, **data):
    """A config file for a folder dataset at root; data holds more data.* keys."""
    config = {"data": {"source": "folder", "root": str(root), "image_size": 8, **data},
              "train": {"num_iterations": 20, "print_every": 10}}
    Path(path).write_text(yaml.safe_dump(config))
    return Path(path)


def make_hard_folder(root, per_class=900, size=64, seed=0):
    """per_class JPEGs of each class under root/cat and root/non-cat whose classes differ only faintly (a
    slightly redder centre under heavy noise): a neuron gets many right and, as on real photos, many wrong."""
    rng = np.random.default_rng(seed)
    for name, label in (("cat", 1), ("non-cat", 0)):
        folder = Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.normal(120, 50, (size, size, 3))
            pixels[size // 4:-size // 4, size // 4:-size // 4, 0] += 1.5 * label
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{name}.{i}.jpg", quality=80)
