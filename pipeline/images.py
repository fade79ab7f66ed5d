"""The one image loader: any file Pillow reads -> an (h, w, 3) uint8 array, the way training saw its pixels.

Policy, in order:
1. Open by content (the extension is ignored), refusing empty files, non-images and decompression bombs:
   images over MAX_IMAGE_PIXELS, and images whose decoding and conversion to RGB would take more than
   DECODE_BUDGET bytes (counted from the header, before a pixel is decoded: a 300 KB PNG of 9000x9000 RGBA
   pixels takes 1.6 GB to decode and composite).
   Only the formats in FORMATS are tried: anything else Pillow knows (EPS, whose plugin runs Ghostscript,
   PSD, FITS, ...) is refused as "not a supported image format (EPS)" before any other plugin runs.
   Float pixels (mode F) are refused: no rule maps arbitrary floats to 0..255 without guessing.
2. A JPEG at least twice the target size is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, Pillow's
   draft mode): the smallest scale that still leaves both sides at least DRAFT_MARGIN times the target's
   longer side. It is 2-3 times faster than a full decode, and the resized pixels differ from a full decode's
   by about 1 grey level on average (docs/ingest.md gives the measured difference).
3. The EXIF orientation is applied, so a phone photo stored sideways comes out upright.
4. Every mode becomes 8-bit RGB: transparency (RGBA, LA, P with a transparent colour) is composited on
   BACKGROUND, 16-bit grey (I;16) and 32-bit integer grey (I) are scaled by 1/257 (values of I outside
   0..65535 clipped: I holds 16-bit values in most files), 1-bit, L, CMYK and YCbCr are converted by Pillow.
5. The result is resized to (h, w) with the chosen fit and resample filter:
   squash (the lesson's plain resize: the aspect ratio is not kept), crop (the largest centred region of the
   target's aspect ratio, then resize), pad (resize to fit inside, centred on BACKGROUND).
"""
import functools
import importlib
import io
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline import PipelineError

FITS = ("squash", "crop", "pad")
RESAMPLES = ("nearest", "bilinear", "bicubic", "lanczos", "box")
BACKGROUND = (255, 255, 255)  # white: transparent stickers and clip-art are drawn to be seen on a white page
DECODE_BUDGET = 256 * 2**20  # bytes one image may take while decoded and converted (serve decodes two at once)
DRAFT_MARGIN = 1  # decode a JPEG down to the target size itself: 2x buys no accuracy for 25% more time (docs/ingest.md)
# what a folder is searched for: the photo and web formats Pillow reads (a file named directly may be anything)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".dib", ".webp", ".tif",
                  ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".qoi", ".avif", ".mpo")
# the photo and web formats that are ever opened, by Pillow's names (MPO and APNG open as JPEG and PNG), each
# with the PIL.<name>ImagePlugin module that reads it
PLUGINS = {"JPEG": "Jpeg", "PNG": "Png", "GIF": "Gif", "BMP": "Bmp", "DIB": "Bmp", "WEBP": "WebP", "TIFF": "Tiff",
           "PPM": "Ppm", "ICO": "Ico", "TGA": "Tga", "QOI": "Qoi", "AVIF": "Avif"}
FORMATS = tuple(PLUGINS)
# what Pillow's decoders raise on malformed files, besides OSError for truncated data
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, TypeError, zlib.error)


class TooLarge(PipelineError):
    """An image refused for its size alone (serve answers 413)."""


def load_image(path, size, fit="squash", resample="bilinear", draft=True, data=None):
    """Read the image file at path as an array of shape (h, w, 3) uint8, with size = (h, w). data, if given,
    is the file's content already read (prepare hashes the same bytes it decodes).

    Raises PipelineError("<path>: <reason>") for anything that is not a readable image.
    """
    assert fit in FITS and resample in RESAMPLES, (fit, resample)
    h, w = size
    with _open(Path(path), data) as image:
        try:
            if draft:
                reduce_jpeg(image, size)
            _check_pixels(path, image.size, Image.MAX_IMAGE_PIXELS)
            _check_budget(path, image)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # e.g. "corrupt EXIF data": the pixels are still good
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                rgb = to_rgb(image)
        except DECODE_ERRORS as e:
            raise PipelineError(f"{path}: truncated or corrupt image ({e})") from None
    method = getattr(Image.Resampling, resample.upper())
    if fit == "squash":
        rgb = rgb.resize((w, h), method)
    elif fit == "crop":
        rgb = ImageOps.fit(rgb, (w, h), method)
    else:
        rgb = ImageOps.pad(rgb, (w, h), method, color=BACKGROUND)
    pixels = np.array(rgb, dtype=np.uint8)  # (h, w, 3)
    assert pixels.shape == (h, w, 3), pixels.shape
    return pixels


def reduce_jpeg(image, size):
    """Have libjpeg decode an opened, not yet loaded JPEG at the smallest DCT scale (1/1, 1/2, 1/4 or 1/8) that
    leaves both sides at least DRAFT_MARGIN times the longer side of size (h, w); other formats are left as
    they are. The request is square, so it holds whatever the EXIF rotation and the fit."""
    if image.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG with extra frames
        side = DRAFT_MARGIN * max(size)
        # only the DCT scale: Pillow leaves libjpeg's IDCT and upsampling settings as they are (its fastest ones
        # measured no faster at 1/4 or 1/8 scale)
        image.draft(image.mode, (side, side))


def _open(path, data=None):
    """Image.open of path (or of data, its content) with every failure turned into a one-line refusal naming path."""
    if data is None:
        if path.is_dir():
            raise PipelineError(f"{path}: is a folder, not an image file")
        if not path.exists():
            raise PipelineError(f"{path}: no such file")
        if not path.is_file():
            raise PipelineError(f"{path}: not a regular file")  # a pipe or a device: reading it could block
    if (path.stat().st_size if data is None else len(data)) == 0:
        raise PipelineError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            # above MAX_IMAGE_PIXELS Pillow only warns; _check_pixels refuses after a JPEG's draft reduction
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path if data is None else io.BytesIO(data), formats=readable_formats())
    except Image.DecompressionBombError as e:  # over twice MAX_IMAGE_PIXELS: not even opened; say it as below
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{found.group(1)} pixels" if found else "the image"
        raise TooLarge(f"{path}: refused: {pixels} is over the limit of {Image.MAX_IMAGE_PIXELS} pixels, "
                       "could be a decompression bomb") from None
    except UnidentifiedImageError:
        raise PipelineError(f"{path}: {_sniff(path, data)}") from None
    except PermissionError as e:
        raise PipelineError(f"{path}: cannot read ({e.strerror})") from None
    except DECODE_ERRORS as e:  # the header itself is cut short or garbled
        raise PipelineError(f"{path}: truncated or corrupt image ({e})") from None
    if image.mode == "F":
        image.close()
        raise PipelineError(f"{path}: float pixels (mode F) are not supported; save it with 8 or 16 bits per channel")
    return image


@functools.cache
def readable_formats():
    """FORMATS that this Pillow can read, their plugins imported (Image.init() would import all of Pillow's
    plugins: 35-60 ms, paid again by every prepare worker that had to do it)."""
    for name in dict.fromkeys(PLUGINS.values()):
        try:
            importlib.import_module(f"PIL.{name}ImagePlugin")
        except ImportError:  # a Pillow without it (AVIF is new in 11.3)
            pass
    return [f for f in FORMATS if f in Image.OPEN]


def _check_pixels(path, size, limit):
    if size[0] * size[1] > limit:
        raise TooLarge(f"{path}: refused: {size[0]}x{size[1]} pixels is over the limit of {limit} pixels, "
                       "could be a decompression bomb")


def decode_bytes(image):
    """The bytes an opened, not yet loaded image takes at the peak of load_image: its decoded pixels (Pillow
    keeps 1, 2 or 4 bytes a pixel), a copy turned by its EXIF orientation, and to_rgb's conversions: four
    images of 4 bytes a pixel alive at once to composite transparency, a float64 grey and two 8-bit ones for
    16- and 32-bit grey, one RGB image (or the crop before the resize) otherwise."""
    mode = image.mode
    own = 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        convert = 16
    else:
        convert = 10 if mode == "I" or mode.startswith("I;16") else 4
    return image.size[0] * image.size[1] * (own + convert + own * _turned(image))


def _turned(image):
    """Whether exif_transpose will copy the image, from the EXIF orientation (0x0112) in its header (a PNG's
    getexif would decode every pixel to look for EXIF after them: only the chunks already read count)."""
    if image.format == "PNG":
        exif = Image.Exif()
        exif.load(image.info.get("exif", b""))
    else:
        exif = image.getexif()
    return exif.get(0x0112, 1) not in (0, 1)


def _check_budget(path, image):
    cost = decode_bytes(image)
    if cost > DECODE_BUDGET:
        w, h = image.size
        raise TooLarge(f"{path}: refused: decoding {w}x{h} {image.mode} pixels would take about {cost // 2**20} MiB, "
                       f"over the budget of {DECODE_BUDGET // 2**20} MiB for one image")


def _sniff(path, data=None):
    """A few words on what a file (its content data, if given) none of FORMATS' plugins opens seems to be.
    Only the plugins' prefix tests run here (a look at the first bytes), never their readers."""
    if data is None:
        with open(path, "rb") as f:
            head = f.read(512)
    else:
        head = data[:512]
    Image.init()
    known = [fmt for fmt, (_, accept) in Image.OPEN.items() if fmt not in FORMATS and accept and accept(head[:16])]
    known += ["PDF"] * head.startswith(b"%PDF-")
    if known:
        return f"not a supported image format ({known[0]})"
    try:
        text = head.decode("utf-8").lstrip().lower()
    except UnicodeDecodeError:
        return "not an image (unknown format)"
    if "\0" in text:  # NUL is valid UTF-8 but never in text: e.g. a file of zeros (a sparse or unwritten file)
        return "not an image (unknown format)"
    return f"not an image ({'an HTML page' if text.startswith(('<!doctype html', '<html')) else 'a text file'})"


def to_rgb(image):
    """A loaded Pillow image of any mode -> an RGB image of 8-bit channels (see the module's policy)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        grey = np.asarray(image, dtype=np.float64)  # (h, w), 0..65535
        image = Image.fromarray(np.clip(np.rint(grey / 257), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.has_transparency_data:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")  # convert would copy an RGB image
