"""Images in: open a picture safely and preprocess it the way Gemma 3 expects.

GEMMA3_REFERENCE.md 2.6 and 2.7: RGB (transparency composited on white), a bilinear resize to
896x896 ignoring the aspect ratio, (x/255 - 0.5)/0.5, and HF's pan-and-scan arithmetic. The
tests hold `preprocess` to transformers' PIL-based Gemma3 image processor.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import struct
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import ImageError

IMAGE_SIZE = 896
MIN_CROP, MAX_CROPS, MIN_RATIO = 256, 4, 1.2  # HF's pan-and-scan defaults
MAX_PIXELS = 120_000_000  # beyond any phone photo; a bigger header is a decompression bomb
# A 1 x 100,000,000 PNG is 200 KB and costs 4 GB and 20 s to squash into 896x896; no real
# picture (panorama, page-long screenshot) has a side longer than a JPEG may.
MAX_SIDE = 65_535
MAX_FILE_BYTES = 512 * 2**20
# Huge photos are reduced first, cheaply, but never below this shorter side: at that size
# pan-and-scan still gets full-resolution crops and (long side >= 7 x 256) the same crop count.
KEEP_SHORT_SIDE = 2 * IMAGE_SIZE
# The decoders a dropped picture may reach. Not EPS (Pillow runs Ghostscript on it) nor the
# dozens of rare formats nobody drops into a chat. JPEG includes MPO, as many phones save it.
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF")
_DAMAGED = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError,
            TypeError, ZeroDivisionError)


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """An RGB image from a file or its bytes, EXIF orientation applied; ImageError otherwise."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "the image")
    data = _read(source, label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # size limits are ours; EXIF noise is not news
            with Image.open(io.BytesIO(data), formats=_decoders()) as image:
                _check_size(image.size, label)
                _draft(image)
                image.load()
                _upright(image)
                return to_rgb(_reduce(image))
    except Image.DecompressionBombError:
        raise ImageError(f"{label}: refused, its header claims more than "
                         f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, over the "
                         f"{MAX_PIXELS / 1e6:.0f}-megapixel limit (a damaged file, a "
                         "decompression bomb, or a picture to scale down first)") from None
    except UnidentifiedImageError:
        raise ImageError(f"{label}: {_unreadable(data)}") from None
    except MemoryError:
        raise ImageError(f"{label}: not enough memory to decode this image") from None
    except _DAMAGED as exc:
        raise ImageError(f"{label}: the image is damaged or incomplete ({exc})") from None


def _decoders() -> list[str]:
    """FORMATS this Pillow can decode (AVIF needs Pillow 11.3 built with libavif)."""
    Image.init()
    return [kind for kind in FORMATS if kind in Image.OPEN]


def _read(source, label: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise ImageError(f"{label}: is a folder, not an image")
            if size > MAX_FILE_BYTES:
                raise ImageError(f"{label}: {size / 2**20:,.0f} MB is too big for an image "
                                 f"(the limit is {MAX_FILE_BYTES // 2**20} MB)")
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{label}: no such file") from None
        except OSError as exc:
            raise ImageError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise ImageError(f"{label}: the file is empty (0 bytes)")
    return data


_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"GIF8": "GIF", b"BM": "BMP",
          b"II*\0": "TIFF", b"MM\0*": "TIFF"}
_FOREIGN = {b"%PDF": "a PDF document", b"%!PS": "a PostScript (EPS) file",
            b"\xc5\xd0\xd3\xc6": "a PostScript (EPS) file", b"8BPS": "a Photoshop (PSD) file",
            b"\0\0\1\0": "an icon (ICO) file"}
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}


def _unreadable(data: bytes) -> str:
    """Why Pillow found no picture in `data`: damaged, of a kind we do not read, or not one."""
    head = data[:12]
    brand = head[8:12] if head[4:8] == b"ftyp" else b""  # ISO media: AVIF, HEIC
    claimed = ("WebP" if head.startswith(b"RIFF") and head[8:12] == b"WEBP"
               else "AVIF" if brand in (b"avif", b"avis") else _first_match(head, _MAGIC))
    if claimed == "AVIF" and "AVIF" not in Image.OPEN:
        foreign = "an AVIF picture (this Pillow has no AVIF decoder)"
    elif claimed:
        return f"a damaged {claimed} file that cannot be read"
    elif brand in _HEIF_BRANDS:
        foreign = "a HEIC/HEIF photo"
    elif b"<svg" in data[:4096].lower():
        foreign = "an SVG drawing"
    else:
        foreign = _first_match(head, _FOREIGN)
    if foreign:
        return f"{foreign}, which cannot be read as a picture here; convert it to PNG or JPEG"
    return "not an image (PNG, JPEG, WebP, GIF, BMP, TIFF or AVIF expected)"


def _first_match(head: bytes, table: dict[bytes, str]) -> str | None:
    return next((kind for magic, kind in table.items() if head.startswith(magic)), None)


def _check_size(size: tuple[int, int], label: str) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{label}: the image has no pixels ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{label}: refused, {width:,}x{height:,} pixels ({width * height / 1e6:,.0f} "
            f"megapixels) is over the {MAX_PIXELS / 1e6:.0f}-megapixel limit. "
            "Scale the picture down and attach it again."
        )
    if max(size) > MAX_SIDE:
        raise ImageError(f"{label}: refused, {width:,}x{height:,} pixels: no photo has a side "
                         f"over {MAX_SIDE:,} pixels. Scale it down and attach it again.")


def _reduction(size: tuple[int, int]) -> int:
    """The integer factor a huge image may be shrunk by without losing what the model sees."""
    return max(1, min(size) // KEEP_SHORT_SIDE)


def _draft(image: Image.Image) -> None:
    """JPEG decodes at 1/2, 1/4 or 1/8 scale for almost nothing: ask for it on huge photos."""
    factor = _reduction(image.size)
    if factor > 1 and image.format in ("JPEG", "MPO"):
        width, height = image.size
        image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))


def _reduce(image: Image.Image) -> Image.Image:
    """Huge images shrink before any colour conversion, which would copy them at full size."""
    factor = _reduction(image.size)
    return _eight_bit(image).reduce(factor) if factor > 1 else image


def _upright(image: Image.Image) -> None:
    """Turn a photo as its EXIF orientation says, as transformers' `load_image` does: a phone
    photo shows upright everywhere else, so the model should see it upright too."""
    try:
        ImageOps.exif_transpose(image, in_place=True)  # no copy for the usual orientation 1
    except _DAMAGED:  # a broken EXIF block loses only the orientation, not the picture
        pass


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (as transformers' convert_to_rgb does)."""
    image = _eight_bit(image)
    if image.mode in ("LA", "RGBA"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        composited = Image.alpha_composite(white, rgba)
        del white, rgba  # a full-size copy each: keep at most two alive at once
        return composited.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """L, LA, RGB or RGBA with the same colours: the modes that `reduce` and compositing take.
    A palette or colour key with a see-through entry becomes RGBA, as in transformers."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_8_bit(image)
    if image.mode in ("L", "LA", "RGB", "RGBA") and image.info.get("transparency") is None:
        return image
    see_through = "A" in image.getbands() or image.info.get("transparency") is not None
    return image.convert("RGBA" if see_through else "RGB")


_SIXTEEN_TO_EIGHT = np.rint(np.arange(65536) * (255 / 65535)).astype(np.uint8)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """Greyscale deeper than 8 bits to L; Pillow would clip it to white instead."""
    values = np.asarray(image)
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return Image.fromarray(_SIXTEEN_TO_EIGHT[values])  # a table: no float copies
    values = np.nan_to_num(values.astype(np.float32))
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode == "F" and low >= 0 and high <= 1:
        values *= 255  # floats in 0..1
    elif low >= 0 and 255 < high <= 65535:
        values *= 255 / 65535  # 16-bit values in a 32-bit container
    elif low < 0 or high > 255:  # arbitrary scientific data: stretch it over black to white
        values = (values - low) * (255 / ((high - low) or 1))
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))


# -- preprocessing ------------------------------------------------------------------------------


def crop_boxes(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Pan-and-scan crops as (left, top, right, bottom), left to right or top to bottom.

    HF's arithmetic: crops along the long side only, about one per short side, at least 2 and
    at most 4, none narrower than 256 pixels, only when the aspect ratio is at least 1.2.
    """
    long, short = max(width, height), min(width, height)
    if long / short < MIN_RATIO:
        return []
    count = min(math.floor(long / short + 0.5), math.floor(long / MIN_CROP))
    count = min(max(2, count), MAX_CROPS)
    across, down = (count, 1) if width >= height else (1, count)
    crop_w, crop_h = math.ceil(width / across), math.ceil(height / down)
    if min(crop_w, crop_h) < MIN_CROP:
        return []
    return [(x, y, min(x + crop_w, width), min(y + crop_h, height))
            for y in range(0, down * crop_h, crop_h) for x in range(0, across * crop_w, crop_w)]


def image_cost(image: Image.Image, pan_and_scan: bool) -> int:
    """How many crops `preprocess` will add: the image takes 260 * (1 + crops) tokens."""
    return len(crop_boxes(*image.size)) if pan_and_scan else 0


def preprocess(image: Image.Image, pan_and_scan: bool) -> tuple[torch.Tensor, int]:
    """(float32 pixel_values [1 + crops, 3, 896, 896] in [-1, 1], crops); the original first."""
    image = to_rgb(image)  # also an RGB image with a transparent colour key, as HF does
    boxes = crop_boxes(*image.size) if pan_and_scan else []
    views = itertools.chain([image], (image.crop(box) for box in boxes))  # one crop at a time
    return torch.stack([_pixels(view) for view in views]), len(boxes)


def _pixels(view: Image.Image) -> torch.Tensor:
    resized = view.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
    values = torch.from_numpy(np.asarray(resized, dtype=np.float32))  # [H, W, 3]
    return (values.permute(2, 0, 1) / 255.0 - 0.5) / 0.5


def sha256(source: str | Path | bytes) -> str:
    """Hex SHA-256 of a file's or a buffer's content: the key of an image everywhere."""
    digest = hashlib.sha256()
    if isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(source)
        return digest.hexdigest()
    with open(source, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
