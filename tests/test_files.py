"""Atomic writes: a file appears whole or not at all, with ordinary permissions."""
import os

import pytest

from pipeline.files import atomic_path, write_text


def test_atomically_written_files_get_the_usual_permissions(tmp_path):
    write_text(tmp_path / "f.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    write_text(tmp_path / "f.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert (tmp_path / "f.txt").read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_an_error_without_a_file_name_inside_atomic_path_names_the_target(tmp_path):
    import errno

    with pytest.raises(OSError) as e, atomic_path(tmp_path / "f.txt"):
        raise OSError(errno.ENOSPC, "No space left on device")  # what a failing write() raises
    assert (e.value.filename, e.value.strerror) == (str(tmp_path / "f.txt"), "No space left on device")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_a_folder_build_that_fails_keeps_the_old_folder_and_leaves_no_hidden_one(fault, tmp_path):
    from pipeline.files import replace_dir

    replace_dir(tmp_path / "d", lambda d: (d / "old.txt").write_text("old"))

    def fill(d):
        (d / "new.txt").write_text("half")
        raise fault
    with pytest.raises(fault):
        replace_dir(tmp_path / "d", fill)
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == ["old.txt"]


def test_an_error_about_a_file_of_the_folder_being_built_names_it_in_its_final_place(tmp_path):
    import errno

    from pipeline.files import replace_dir

    def fill(d):
        raise OSError(errno.ENOSPC, "No space left on device", str(d / "sub" / "x.png"))
    with pytest.raises(OSError) as e:
        replace_dir(tmp_path / "d", fill)
    assert e.value.filename == str(tmp_path / "d" / "sub" / "x.png") and os.listdir(tmp_path) == []


def test_png_bytes_encodes_rgb_itself_and_pillow_reads_back_every_pixel():
    import io
    import zlib

    import numpy as np
    from PIL import Image

    from pipeline.files import png_bytes

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (37, 23, 3), dtype=np.uint8)  # odd sizes; neighbouring rows wrap modulo 256
    enlarged = photo.repeat(4, axis=0).repeat(4, axis=1)  # rows repeated, as the misclassified images are
    for pixels in (photo, enlarged, np.zeros((1, 1, 3), np.uint8)):
        data = png_bytes(Image.fromarray(pixels, "RGB"))
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.mode == "RGB"
            np.testing.assert_array_equal(np.asarray(image), pixels)
    # every row Up-filtered (type 2, its difference from the row above), not Pillow's choice row by row: a
    # repeated row is all zeros, so the 16 times larger image compresses to about the size of the small one
    data = png_bytes(Image.fromarray(enlarged, "RGB"))
    assert data[12:16] == b"IHDR" and data[37:41] == b"IDAT"  # one IDAT chunk, right after the header
    rows = zlib.decompress(data[41:41 + int.from_bytes(data[33:37], "big")])
    assert rows[::1 + 3 * enlarged.shape[1]] == bytes([2]) * enlarged.shape[0]
    assert len(data) < 1.5 * len(png_bytes(Image.fromarray(photo, "RGB")))
    at, kinds = 8, []  # every chunk's CRC-32 (Pillow does not check IDAT's)
    while at < len(data):
        size, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        assert data[at + 8 + size:at + 12 + size] == zlib.crc32(data[at + 4:at + 8 + size]).to_bytes(4, "big"), kind
        at, kinds = at + 12 + size, kinds + [kind]
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and kinds == [b"IHDR", b"IDAT", b"IEND"]
    for empty in ((0, 5), (5, 0)):  # no rows or no columns: Pillow's refusal, not a broken file
        with pytest.raises(ValueError, match="cannot write empty image"):
            png_bytes(Image.new("RGB", empty))
    grey = Image.fromarray(photo[..., 0], "L")  # other modes: Pillow's encoder
    with Image.open(io.BytesIO(png_bytes(grey))) as image:
        assert image.mode == "L" and np.array_equal(np.asarray(image), photo[..., 0])
