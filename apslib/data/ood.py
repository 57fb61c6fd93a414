"""Out-of-distribution image sets for the equivariance evaluation.

:func:`photographs`, :func:`noise_images`, :func:`shepp_logan` and :func:`image_folder`
return :class:`ImageSet` iterables; :func:`ood_sets` bundles them by name.

Conventions:

* Every image is a ``(1, size, size)`` tensor normalised like the fastMRI model input
  (:func:`to_model_input`): grayscale, the shorter side resized to
  ``round(size * 256/224)`` (ImageNet's protocol), centre crop, instance normalisation
  (fastmri's ``normalize_instance``, eps 1e-11), clamp to [-6, 6].
* Sets load lazily, in a fixed order (names, or paths sorted), and are seeded where
  random; an image that cannot be loaded is skipped with a :class:`DataWarning`.
* Everything used ships with the installed packages (scikit-image's photographs and
  phantom) or comes from a folder you name: nothing is downloaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from pathlib import Path

import numpy as np
import torch
from fastmri.data.transforms import normalize_instance

from .common import DataError, DataWarning

__all__ = [
    "PHOTO_NAMES",
    "IMAGE_EXTENSIONS",
    "RESIZE_RATIO",
    "ImageSet",
    "to_model_input",
    "photographs",
    "noise_images",
    "shepp_logan",
    "image_folder",
    "ood_sets",
]

PHOTO_NAMES = (
    "camera",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "coins",
    "moon",
    "page",
    "horse",
    "clock",
    "text",
    "grass",
    "gravel",
    "brick",
    "hubble_deep_field",
    "retina",
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
RESIZE_RATIO = 256 / 224  # ImageNet protocol: shorter side to 256, centre crop 224


def to_model_input(
    image, size: int, *, resize_ratio: float = RESIZE_RATIO, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Any 2-D/RGB(A) image -> a ``(1, size, size)`` model input.

    Grayscale; the shorter side resized to ``round(size * resize_ratio)`` (anti-aliased),
    centre crop ``size x size``; instance-normalised (fastmri's ``normalize_instance``,
    eps 1e-11) and clamped to [-6, 6] like the fastMRI model input.
    """
    from skimage.color import rgb2gray
    from skimage.transform import resize

    img = np.asarray(image)
    if img.ndim == 3:
        if img.shape[-1] == 4:
            img = img[..., :3]
        img = rgb2gray(img) if img.shape[-1] == 3 else img[..., 0]
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D or RGB image, got shape {np.shape(image)}")
    img = img.astype(np.float64)
    h, w = img.shape
    short = max(int(round(size * resize_ratio)), size)
    scale = short / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    if (nh, nw) != (h, w):
        img = resize(img, (nh, nw), order=1, anti_aliasing=scale < 1, preserve_range=True)
    r0, c0 = (nh - size) // 2, (nw - size) // 2
    x = torch.from_numpy(np.ascontiguousarray(img[r0 : r0 + size, c0 : c0 + size]))[None]
    x, _, _ = normalize_instance(x, eps=1e-11)
    return x.clamp(-6, 6).to(dtype)


class ImageSet:
    """A named, lazily loaded set of model inputs: iterating yields ``(1, size, size)``
    tensors; :meth:`items` yields ``(name, tensor)``; :meth:`stack` gives ``(N, 1, s, s)``.

    ``sources``: ``(name, loader)`` pairs, ``loader()`` returning the raw image.
    ``skip_errors``: a source that fails to load is skipped with a :class:`DataWarning`;
    a set none of whose images loads is a :class:`DataError` (one line: how many were
    tried, the first failure and ``hint``, e.g. which formats are read).
    """

    def __init__(
        self,
        name: str,
        sources: Sequence[tuple[str, Callable[[], np.ndarray]]],
        size: int,
        *,
        resize_ratio: float = RESIZE_RATIO,
        dtype: torch.dtype = torch.float32,
        skip_errors: bool = True,
        hint: str = "",
    ):
        self.name, self.sources, self.size = name, list(sources), int(size)
        self.resize_ratio, self.dtype, self.skip_errors = resize_ratio, dtype, skip_errors
        self.hint = hint

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.sources]

    def __len__(self) -> int:
        return len(self.sources)

    def _input(self, raw) -> torch.Tensor:
        if isinstance(raw, torch.Tensor):
            return raw.to(self.dtype)
        return to_model_input(raw, self.size, resize_ratio=self.resize_ratio, dtype=self.dtype)

    def _unreadable(self, first: tuple[str, BaseException] | None) -> DataError:
        cause = ""
        if first is not None:
            text = " ".join(str(first[1]).split())[:160] or type(first[1]).__name__
            cause = f" (the first, {first[0]}: {text})"
        hint = f"; {self.hint}" if self.hint else ""
        return DataError(f"none of the {len(self)} images of {self.name} could be read{cause}{hint}")

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, load in self.sources:
            try:
                raw = load()
            except Exception as err:  # noqa: BLE001 - any unreadable image is skipped
                if not self.skip_errors:
                    raise DataError(f"cannot load image {name}: {err}") from err
                warnings.warn(f"skipping image {name} of {self.name}: {err}", DataWarning, stacklevel=2)
                continue
            yield name, self._input(raw)

    def first(self) -> tuple[str, torch.Tensor]:
        """``(name, input)`` of the first image that loads (without warning about those
        before it); :class:`DataError` when none does."""
        failed: tuple[str, BaseException] | None = None
        for name, load in self.sources:
            try:
                return name, self._input(load())
            except Exception as err:  # noqa: BLE001 - any unreadable image is skipped
                failed = failed or (name, err)
        raise self._unreadable(failed)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for _, x in self.items():
            yield x

    def stack(self) -> torch.Tensor:
        """Every image that loads, ``(N, 1, size, size)``; :class:`DataError` when none does."""
        images = list(self)
        if not images:
            raise self._unreadable(None)
        return torch.stack(images)

    def __repr__(self) -> str:
        return f"ImageSet({self.name!r}, {len(self)} images, size={self.size})"


def photographs(
    size: int = 128, names: Sequence[str] = PHOTO_NAMES, *, dtype: torch.dtype = torch.float32
) -> ImageSet:
    """scikit-image's bundled photographs (offline), grayscale, resized and centre-cropped.
    Names that fail to load (e.g. a data file missing from an install) are skipped."""
    import skimage.data

    sources = []
    for n in names:
        fn = getattr(skimage.data, n, None)
        if fn is None:
            warnings.warn(f"skimage.data has no image {n!r}: skipped", DataWarning, stacklevel=2)
            continue
        sources.append((n, fn))
    return ImageSet("photographs", sources, size, dtype=dtype)


def noise_images(
    size: int = 128, count: int = 8, *, std: float = 1000.0, seed: int = 0, dtype: torch.dtype = torch.float32
) -> ImageSet:
    """White Gaussian noise images (std 1000 before normalisation, as in the authors'
    extra OOD test), seeded; then normalised like every model input."""

    def make(i):
        def load():
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + i)
            x = torch.randn(1, size, size, generator=g, dtype=torch.float64) * std
            x, _, _ = normalize_instance(x, eps=1e-11)
            return x.clamp(-6, 6)

        return load

    return ImageSet("noise", [(f"noise_{i:03d}", make(i)) for i in range(count)], size, dtype=dtype)


def shepp_logan(size: int = 128, *, dtype: torch.dtype = torch.float32) -> ImageSet:
    """The Shepp-Logan phantom (scikit-image, 400x400) resized to ``size``, uncropped."""
    import skimage.data

    return ImageSet(
        "shepp_logan",
        [("shepp_logan", skimage.data.shepp_logan_phantom)],
        size,
        resize_ratio=1.0,
        dtype=dtype,
    )


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in ("L", "RGB", "RGBA", "I", "I;16", "F"):
            img = img.convert("RGB")
        return np.asarray(img)


def image_folder(
    folder,
    size: int = 224,
    *,
    recursive: bool = True,
    limit: int | None = None,
    resize_ratio: float = RESIZE_RATIO,
    dtype: torch.dtype = torch.float32,
) -> ImageSet:
    """Every PNG/JPEG/BMP/TIFF image under ``folder`` (e.g. ImageNet validation), sorted by
    path, grayscale, shorter side to ``size * 256/224``, centre crop ``size`` (ImageNet's
    protocol at 224). Unreadable files are skipped with a warning; a folder of which none
    is readable is a :class:`DataError` when the set is loaded (:meth:`ImageSet.first`)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder {root}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, Integral) or limit < 1):
        raise ValueError(f"the image limit must be an integer >= 1 (None: every image), got {limit!r}")
    pattern = root.rglob("*") if recursive else root.iterdir()
    paths = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if limit is not None:
        paths = paths[: int(limit)]
    if not paths:
        pattern = root.rglob("*") if recursive else root.iterdir()
        others = sum(1 for p in pattern if p.is_file())
        held = f" (it holds {others} file(s) of other types)" if others else ""
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {root}{held}")
    formats = ", ".join(IMAGE_EXTENSIONS)
    return ImageSet(
        f"folder:{root}",
        [(str(p.relative_to(root)), lambda p=p: _read_image(p)) for p in paths],
        size,
        resize_ratio=resize_ratio,
        dtype=dtype,
        hint=f"image files are chosen by extension ({formats}) and decoded with Pillow: point "
        "--image-dir (image_dir) at a folder of such images",
    )


def ood_sets(
    size: int = 128,
    *,
    image_dir=None,
    image_limit: int | None = None,
    noise_count: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> dict[str, ImageSet]:
    """All out-of-distribution sets by name; ``image_dir`` adds ``"folder"`` (its first
    ``image_limit`` images by path, all when ``None``: ImageNet's 50 000 validation images
    hold 10 GB at 224x224 in float32, so a limit such as 1000 is usual on one machine)."""
    sets = {
        "photographs": photographs(size, dtype=dtype),
        "noise": noise_images(size, noise_count, seed=seed, dtype=dtype),
        "shepp_logan": shepp_logan(size, dtype=dtype),
    }
    if image_dir is not None:
        sets["folder"] = image_folder(image_dir, size, limit=image_limit, dtype=dtype)
    return sets
