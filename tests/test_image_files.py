"""Real and hostile image files: each format opens as RGB, each broken one is a clear ImageError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import ImageError
from engine.images import MAX_PIXELS, open_image, preprocess


def encode(image: Image.Image, kind: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, kind, **options)
    return buffer.getvalue()


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header announcing width x height RGB pixels, with one row of data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\0" * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def colourful(width=48, height=32) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF"])
def test_every_common_format_opens_as_rgb(kind, tmp_path):
    path = write(tmp_path, f"picture.{kind.lower()}", encode(colourful(), kind))
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (48, 32)
    pixels, crops = preprocess(image, pan_and_scan=True)
    assert pixels.shape == (1 + crops, 3, 896, 896) and pixels.abs().max() <= 1


@pytest.mark.parametrize("kind", ["GIF", "WEBP", "PNG"])
def test_animations_give_their_first_frame(kind):
    frames = [Image.new("RGB", (20, 20), colour) for colour in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], kind, save_all=True, append_images=frames[1:], duration=100,
                  **({"lossless": True} if kind == "WEBP" else {}))
    assert open_image(data).getpixel((5, 5)) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparency_is_composited_on_white(mode):
    see_through = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    see_through.putpixel((0, 0), (0, 0, 0, 255))
    image = open_image(encode(see_through.convert(mode), "PNG"))
    assert image.getpixel((5, 5)) == (255, 255, 255) and image.getpixel((0, 0)) == (0, 0, 0)


def test_palette_with_a_transparent_entry_works():
    palette = Image.new("P", (10, 10), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    image = open_image(encode(palette, "PNG", transparency=0))
    assert image.getpixel((0, 0)) == (255, 255, 255) and image.getpixel((5, 5)) == (0, 200, 0)


def test_cmyk_jpeg_works():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan or black: red
    red, green, blue = open_image(encode(cmyk, "JPEG", quality=95)).getpixel((8, 8))
    assert red > 240 and green < 15 and blue < 15


def test_16_bit_png_keeps_its_tones():
    ramp = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    image = open_image(encode(Image.fromarray(ramp), "PNG"))
    values = np.asarray(image)[..., 0]
    assert values[0, 0] == 0 and values[-1, -1] == 255  # not clipped to white
    assert 125 <= values[4, 0] <= 131  # mid-grey stays mid-grey


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied(kind):
    """A phone photo stored sideways is seen upright, as transformers' load_image does."""
    wide = Image.new("RGB", (40, 20), (0, 0, 0))
    wide.paste((255, 255, 255), (0, 0, 10, 10))  # white top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display after turning 90 degrees clockwise
    image = open_image(encode(wide, kind, exif=exif.tobytes()))
    assert image.size == (20, 40)
    assert min(image.getpixel((15, 5))) > 200  # the corner is now top-right
    assert max(image.getpixel((5, 35))) < 50


def test_broken_exif_loses_only_the_orientation():
    data = encode(colourful(), "JPEG", exif=b"Exif\0\0II*\0" + b"\xff" * 20)
    assert open_image(data).size == (48, 32)


def test_one_pixel_image_works():
    pixels, crops = preprocess(open_image(encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")),
                               pan_and_scan=True)
    assert crops == 0 and pixels.shape == (1, 3, 896, 896)


# -- broken and hostile files -------------------------------------------------------------------


def hostile_files() -> dict[str, tuple[bytes, str]]:
    png, jpeg = encode(colourful(), "PNG"), encode(colourful(200, 100), "JPEG")
    gif = encode(colourful(), "GIF")
    tiff = bytearray(encode(colourful(), "TIFF"))
    tiff[4:8] = struct.pack("<I", 10**8)  # first directory far past the end
    bmp = bytearray(encode(colourful(), "BMP"))
    bmp[18:26] = struct.pack("<ii", 1 << 30, -(1 << 30))  # absurd width and height
    return {
        "truncated.png": (png[: len(png) // 2], "damaged or incomplete"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "damaged or incomplete"),
        "empty.png": (b"", "empty"),
        "notes.png": (b"This is a text file, not a picture.\n" * 5, "not an image"),
        "html.jpg": (b"<!DOCTYPE html><html><body>404</body></html>", "not an image"),
        "zero_by_zero.png": (png_claiming(0, 0), "damaged PNG"),
        "huge_header.png": (png_claiming(100_000, 100_000), "claims more than 179 megapixels"),
        "wide_header.png": (png_claiming(2**31 - 1, 1), "claims more than 179 megapixels"),
        "corrupt.gif": (gif[:13] + b"\x2c" + b"\xff" * 40, "damaged GIF"),
        "gif_huge_screen.gif": (b"GIF89a\xff\xff\xff\xff" + gif[10:], "claims more than"),
        "corrupt.tiff": (bytes(tiff), "damaged TIFF"),
        "absurd.bmp": (bytes(bmp), "claims more than"),
        "garbage.webp": (b"RIFF\x10\0\0\0WEBPVP8 " + b"\x00" * 8, "damaged or incomplete"),
        "sound.wav": (b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 40, "not an image"),
        "thin.png": (encode(Image.new("1", (1, 70_000)), "PNG"), "no photo has a side over 65,535"),
        "photo.heic": (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64, "HEIC/HEIF photo"),
        "scan.pdf": (b"%PDF-1.7\n" + b"\0" * 64, "a PDF document"),
        "logo.svg": (b'<?xml version="1.0"?>\n<svg width="9" height="9"/>', "an SVG drawing"),
        "layers.psd": (b"8BPS\0\1" + b"\0" * 64, "a Photoshop"),
        "figure.eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n", "PostScript"),
    }


@pytest.mark.parametrize("name", list(hostile_files()))
def test_broken_files_give_a_clear_error_naming_the_file(name, tmp_path):
    data, message = hostile_files()[name]
    path = write(tmp_path, name, data)
    with pytest.raises(ImageError, match=message) as caught:
        open_image(path)
    assert str(path) in str(caught.value)


def test_eps_never_reaches_ghostscript(tmp_path, monkeypatch):
    """Pillow would run Ghostscript on an EPS file: pretend it is installed, it must not run."""
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "false", raising=False)
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n"
    with pytest.raises(ImageError, match="a PostScript .EPS. file, which cannot be read"):
        open_image(write(tmp_path, "figure.png", eps))


def test_avif_without_a_decoder_is_named(monkeypatch):
    data = encode(colourful(), "AVIF")
    monkeypatch.delitem(Image.OPEN, "AVIF")  # as on a Pillow built without libavif
    with pytest.raises(ImageError, match="^x.avif: an AVIF picture .this Pillow has no AVIF"):
        open_image(data, name="x.avif")
    assert open_image(encode(colourful(), "PNG")).size == (48, 32)  # the others still open


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 1000  # a 2 MB file that would decode to half a gigabyte
    data = encode(Image.new("1", (side, side)), "PNG")
    assert len(data) < 3_000_000
    with pytest.raises(ImageError, match="megapixel limit"):
        open_image(write(tmp_path, "bomb.png", data))


def test_missing_file_folder_and_oversized_file(tmp_path):
    with pytest.raises(ImageError, match="absent.png: no such file"):
        open_image(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="is a folder"):
        open_image(tmp_path)
    sparse = write(tmp_path, "poster.tiff", b"II*\0")
    with open(sparse, "r+b") as file:
        file.truncate(600 * 2**20)  # sparse: no disk space used
    with pytest.raises(ImageError, match="poster.tiff: 600 MB is too big for an image"):
        open_image(sparse)


def test_bytes_are_named_by_the_caller():
    with pytest.raises(ImageError, match="^clipboard: the file is empty"):
        open_image(b"", name="clipboard")
    with pytest.raises(ImageError, match="^the image: not an image"):
        open_image(b"plain text")
