"""The shared image loader on real files written by Pillow: formats, modes, EXIF, fits, and every refusal."""
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.images import BACKGROUND, load_image
from tests.conftest import run_python

WHITE = BACKGROUND


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize("name, fmt", [("a.jpg", "JPEG"), ("a.png", "PNG"), ("a.bmp", "BMP"), ("a.webp", "WEBP"),
                                       ("a.tif", "TIFF"), ("a.gif", "GIF"), ("png-named.jpg", "PNG"),
                                       ("no-suffix", "PNG")])
def test_every_format_is_read_by_its_content(tmp_path, name, fmt):
    extra = {"lossless": True} if fmt == "WEBP" else {}
    path = save(Image.new("RGB", (80, 40), (200, 40, 40)), tmp_path / name, format=fmt, **extra)
    pixels = load_image(path, (64, 64))
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels.reshape(-1, 3).mean(axis=0), (200, 40, 40), atol=2)


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), (255, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert (load_image(path, (64, 64)) == (255, 0, 0)).all()


def palette_with_transparency():
    image = Image.new("P", (50, 30), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    image.paste(0, (0, 0, 25, 30))  # left half: index 0, transparent below
    image.info["transparency"] = 0
    return image


@pytest.mark.parametrize("make, fmt, left, right", [
    (lambda: Image.new("RGBA", (50, 30), (10, 20, 30, 0)), "PNG", WHITE, WHITE),
    (lambda: Image.new("RGBA", (50, 30), (10, 20, 30, 255)), "PNG", (10, 20, 30), (10, 20, 30)),
    (lambda: Image.new("LA", (50, 30), (100, 0)), "PNG", WHITE, WHITE),
    (palette_with_transparency, "PNG", WHITE, (10, 200, 10)),
    (palette_with_transparency, "GIF", WHITE, (10, 200, 10)),
    (lambda: Image.new("L", (50, 30), 100), "PNG", (100,) * 3, (100,) * 3),
    (lambda: Image.new("I;16", (50, 30), 257 * 100), "PNG", (100,) * 3, (100,) * 3),  # scaled, not clipped
    (lambda: Image.new("I;16", (50, 30), 65535), "TIFF", WHITE, WHITE),
    (lambda: Image.new("1", (50, 30), 1), "BMP", WHITE, WHITE),
    (lambda: Image.new("CMYK", (50, 30), (0, 255, 255, 0)), "TIFF", (255, 0, 0), (255, 0, 0)),
    (lambda: Image.new("CMYK", (50, 30), (0, 0, 0, 0)), "JPEG", WHITE, WHITE),
])
def test_every_mode_becomes_8_bit_rgb(tmp_path, make, fmt, left, right):
    image = make()
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, format=fmt, **({"transparency": 0} if image.mode == "P" else {}))
    with Image.open(path) as reread:
        assert reread.mode == image.mode or fmt == "GIF"  # the file really holds that mode
    pixels = load_image(path, (64, 64), resample="nearest")
    assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels[:, :16].reshape(-1, 3), np.tile(left, (64 * 16, 1)), atol=1)
    np.testing.assert_allclose(pixels[:, -16:].reshape(-1, 3), np.tile(right, (64 * 16, 1)), atol=1)


def quadrants(w=64, h=64):
    """An upright picture whose four quadrants have different colours (JPEG keeps flat 8x8 blocks exact)."""
    image = Image.new("RGB", (w, h), (250, 0, 0))
    image.paste((0, 250, 0), (w // 2, 0, w, h // 2))
    image.paste((0, 0, 250), (0, h // 2, w // 2, h))
    image.paste((250, 250, 0), (w // 2, h // 2, w, h))
    return image


@pytest.mark.parametrize("scale", [1, 16])  # 16: a 1024x1536 photo, decoded in JPEG draft mode
def test_exif_orientation_6_gives_the_upright_pixels(tmp_path, scale):
    upright = quadrants(64 * scale, 96 * scale)
    save(upright, tmp_path / "upright.jpg", quality=95, subsampling=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the camera stored it turned the other way
    save(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "sideways.jpg", quality=95, subsampling=0,
         exif=exif)
    want = load_image(tmp_path / "upright.jpg", (64, 64))
    got = load_image(tmp_path / "sideways.jpg", (64, 64))
    assert np.abs(got.astype(int) - want).max() <= 3
    exif[0x0112] = 1  # the same stored pixels read without the rotation are far from the upright picture
    save(upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "plain.jpg", quality=95, exif=exif)
    assert np.abs(load_image(tmp_path / "plain.jpg", (64, 64)).astype(int) - want).max() > 200


def test_fits_squash_crop_and_pad(tmp_path):
    wide = Image.new("RGB", (200, 100), (0, 0, 250))
    wide.paste((250, 0, 0), (0, 0, 50, 100))  # a red band on the left quarter
    path = save(wide, tmp_path / "wide.png")
    squash = load_image(path, (64, 64), "squash", "nearest")
    crop = load_image(path, (64, 64), "crop", "nearest")
    pad = load_image(path, (64, 64), "pad", "nearest")
    assert (squash[:, :16] == (250, 0, 0)).all() and (squash[:, 16:] == (0, 0, 250)).all()
    assert (crop == (0, 0, 250)).all()  # the centred 100x100 square misses the band
    assert (pad[:16] == WHITE).all() and (pad[-16:] == WHITE).all()  # the 64x32 picture is centred
    assert (pad[16:48, :16] == (250, 0, 0)).all() and (pad[16:48, 16:] == (0, 0, 250)).all()


def test_size_is_height_then_width(tmp_path):
    path = save(quadrants(), tmp_path / "q.png")
    assert load_image(path, (32, 48)).shape == (32, 48, 3)


def test_a_large_jpeg_decoded_in_draft_mode_is_close_to_the_full_decode(tmp_path):
    y, x = np.mgrid[0:1536, 0:2048]
    smooth = np.stack([x * 255 // 2047, y * 255 // 1535, (x + y) * 255 // 3582], axis=-1).astype(np.uint8)
    path = save(Image.fromarray(smooth), tmp_path / "photo.jpg", quality=90)
    draft = load_image(path, (64, 64)).astype(int)
    full = load_image(path, (64, 64), draft=False).astype(int)
    assert np.abs(draft - full).max() <= 3


def png_declaring(width, height):
    """A valid tiny PNG whose header declares width x height: a decompression bomb's opening."""
    import io

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature(8)+length(4)+type(4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the CRC over type + 13 data bytes
    return bytes(data)


def write(path, data):
    path.write_bytes(data)
    return path


def truncated_jpeg(path):
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, quality=90)
    path.write_bytes(path.read_bytes()[:3000])
    return path


def sparse(path, size):
    """A file of size zero bytes that takes no disk space (truncate extends it with a hole)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


BAD_FILES = [
    ("missing.jpg", lambda p: p, "missing.jpg: no such file"),
    ("empty.jpg", lambda p: write(p, b""), "empty.jpg: empty file"),
    ("notes.jpg", lambda p: write(p, b"remember the milk\n"), "notes.jpg: not an image (a text file)"),
    ("page.jpg", lambda p: write(p, b"<!DOCTYPE html><html><body>404</body></html>"),
     "page.jpg: not an image (an HTML page)"),
    ("noise.png", lambda p: write(p, np.random.default_rng(1).bytes(4096)), "noise.png: not an image (unknown format)"),
    ("zeros.jpg", lambda p: sparse(p, 1 << 20), "zeros.jpg: not an image (unknown format)"),
    ("cut.jpg", truncated_jpeg, "cut.jpg: truncated or corrupt image (image file is truncated"),
    ("album.jpg", lambda p: p.mkdir() or p, "album.jpg: is a folder, not an image file"),
    ("pipe.jpg", lambda p: os.mkfifo(p) or p, "pipe.jpg: not a regular file"),
    ("bomb.png", lambda p: write(p, png_declaring(10_000, 10_000)),
     "bomb.png: refused: 10000x10000 pixels is over the limit of 89478485 pixels, could be a decompression bomb"),
    ("huge-bomb.png", lambda p: write(p, png_declaring(100_000, 100_000)),
     "huge-bomb.png: refused: 10000000000 pixels is over the limit of 89478485 pixels, could be a decompression bomb"),
]


@pytest.mark.parametrize("name, make, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files_are_refused_naming_the_path(tmp_path, name, make, message):
    path = make(tmp_path / name)
    with pytest.raises(PipelineError) as caught:
        load_image(path, (64, 64))
    assert str(caught.value).startswith(str(tmp_path / message))
    assert "\n" not in str(caught.value)

NOT_FILES = ("missing.jpg", "album.jpg", "pipe.jpg")


@pytest.mark.parametrize("name, make, message", [b for b in BAD_FILES if b[0] not in NOT_FILES],
                         ids=[b[0] for b in BAD_FILES if b[0] not in NOT_FILES])
def test_bad_content_already_read_is_refused_in_the_same_words(tmp_path, name, make, message):
    path = make(tmp_path / name)  # prepare reads a file once, hashes the bytes and decodes the same bytes
    data = path.read_bytes()
    path.unlink()  # so the bytes given are all there is to decode
    with pytest.raises(PipelineError) as caught:
        load_image(path, (64, 64), data=data)
    assert str(caught.value).startswith(str(tmp_path / message))


def test_content_already_read_gives_the_same_pixels_as_the_file(tmp_path):
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways
    path = save(image, tmp_path / "photo.jpg", quality=90, exif=exif)
    from_file, data = load_image(path, (64, 64)), path.read_bytes()
    path.unlink()  # so the bytes given are all there is to decode
    assert np.array_equal(load_image(path, (64, 64), data=data), from_file)


def test_only_the_allowed_formats_plugins_are_imported():
    # on the way to a decoded image only the allowed formats' plugins are loaded (Image.open's formats= is what
    # keeps an EPS named .jpg from Ghostscript); fewer imports also start a prepare worker faster
    code = ("import sys; from pipeline.images import readable_formats, FORMATS; formats = readable_formats(); "
            "assert set(formats) >= set(FORMATS) - {'AVIF'}, formats; "
            "loaded = sorted(m for m in sys.modules if m.startswith('PIL.') and m.endswith('ImagePlugin')); "
            "assert 'PIL.EpsImagePlugin' not in loaded and 'PIL.PsdImagePlugin' not in loaded, loaded; print(len(loaded))")
    result = run_python("-c", code, check=0)
    assert int(result.stdout) <= 13
