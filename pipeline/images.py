"""The shared image loader: one file on disk -> an (h, w, 3) uint8 array, the same way everywhere.

FITS say how the picture meets the target size: squash (the lesson's plain resize, aspect ratio lost),
crop (scale to cover, cut the centre) or pad (scale to fit, black borders).
"""
import numpy as np
from PIL import Image, ImageOps

from pipeline import PipelineError

FITS = ("squash", "crop", "pad")
RESAMPLES = ("nearest", "bilinear", "bicubic", "lanczos", "box")


def load_image(path, size, fit="squash", resample="bilinear"):
    """Open path with Pillow, apply its EXIF orientation, convert to RGB and resize to size = (h, w).

    Returns an array of shape (h, w, 3) uint8. Large JPEGs are decoded at a reduced scale (Pillow's draft
    mode: 1/2, 1/4 or 1/8) that stays at least twice the target size before the resize.
    Raises PipelineError("<path>: <reason>") for a file that cannot be read as an image.
    """
    assert fit in FITS and resample in RESAMPLES, (fit, resample)
    h, w = size
    method = getattr(Image.Resampling, resample.upper())
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                side = 2 * max(h, w)  # a square request: whatever the EXIF rotation, both sides stay >= side
                im.draft("RGB", (side, side))
            im = ImageOps.exif_transpose(im).convert("RGB")
            if fit == "squash":
                im = im.resize((w, h), method)
            elif fit == "crop":
                im = ImageOps.fit(im, (w, h), method)
            else:
                im = ImageOps.pad(im, (w, h), method, color=(0, 0, 0))
            pixels = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file") from None
    except Image.UnidentifiedImageError:
        raise PipelineError(f"{path}: not an image") from None
    except Image.DecompressionBombError as e:
        raise PipelineError(f"{path}: too large to decode ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = "truncated" if "truncated" in str(e).lower() else "unreadable"
        raise PipelineError(f"{path}: {reason} ({e})") from None
    assert pixels.shape == (h, w, 3), pixels.shape
    return pixels
