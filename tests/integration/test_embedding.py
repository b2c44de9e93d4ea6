"""The packaged embedding model, for real: assembled from the installed packages,
loaded by fastembed from that directory alone, and giving sensible vectors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.matcher import model_files
from services.matcher.embedding import DIM, Embedder
from shared.settings import Settings

PYTHON_RESUME = (
    "Backend developer, eight years of Python: asyncio services, FastAPI, PostgreSQL, "
    "RabbitMQ consumers, pytest, Docker and Kubernetes deployments."
)
PYTHON_JOB = (
    "We are hiring a Python engineer to build asynchronous backend services with "
    "PostgreSQL and message queues. Experience with FastAPI and Docker is a plus."
)
NURSING_JOB = (
    "Registered nurse for our intensive care unit: patient assessment, medication "
    "administration, night shifts, BLS and ACLS certification required."
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_files.assemble(tmp_path_factory.mktemp("model") / "all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> Iterator[Embedder]:
    embedder = Embedder(model_dir)
    yield embedder
    embedder.close()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_the_model_directory_is_assembled_once(model_dir: Path) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(model_files.MODEL_FILES)
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    model_files.assemble(model_dir)
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


def test_a_damaged_model_file_is_replaced(tmp_path: Path) -> None:
    target = model_files.assemble(tmp_path / "m")
    good = (target / "config.json").read_bytes()
    (target / "config.json").write_text("{}")
    model_files.assemble(target)
    assert (target / "config.json").read_bytes() == good


def test_vectors_are_384_d_and_normalised(embedder: Embedder) -> None:
    vectors = embedder.embed_sync([PYTHON_RESUME, PYTHON_JOB, "", "x"])
    assert vectors.shape == (4, DIM)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_sync([]).shape == (0, DIM)


def test_a_python_resume_is_closer_to_a_python_job_than_to_nursing(embedder: Embedder) -> None:
    resume, python_job, nursing_job = embedder.embed_sync([PYTHON_RESUME, PYTHON_JOB, NURSING_JOB])
    assert cosine(resume, python_job) > cosine(resume, nursing_job) + 0.2


def test_embedding_is_deterministic_and_independent_of_the_batch(embedder: Embedder) -> None:
    alone = embedder.embed_sync([PYTHON_JOB])
    again = embedder.embed_sync([PYTHON_JOB])
    batched = embedder.embed_sync([NURSING_JOB, PYTHON_JOB, "short"])
    assert np.array_equal(alone, again)
    assert np.allclose(alone[0], batched[1], atol=1e-5)


def test_a_long_text_is_embedded_whole_in_windows(embedder: Embedder) -> None:
    sentences = [
        "Senior Python developer building asyncio microservices.",
        "Designed PostgreSQL schemas and tuned slow queries.",
        "Wrote RabbitMQ consumers with retries and dead-letter queues.",
        "Maintained Django and FastAPI applications in production.",
        "Mentored junior engineers on testing with pytest and code review.",
        "Deployed services with Docker and Kubernetes on AWS.",
    ]
    long_text = " ".join(sentences * 25)  # about 1,500 word pieces, the model reads 256
    first_part = " ".join(sentences)
    long_vector, head, nursing = embedder.embed_sync([long_text, first_part, NURSING_JOB])
    assert np.isclose(np.linalg.norm(long_vector), 1.0, atol=1e-5)
    assert cosine(long_vector, head) > 0.9
    assert cosine(long_vector, head) > cosine(long_vector, nursing) + 0.5
    # the tail counts too: the same start with another story after it moves the vector
    other = first_part + " " + "Night shifts as a nurse on a cardiology ward. " * 150
    (other_vector,) = embedder.embed_sync([other])
    assert cosine(other_vector, head) < 0.7


def test_max_windows_caps_the_work_on_long_texts(model_dir: Path) -> None:
    capped = Embedder(model_dir, max_windows=1)
    try:
        text = PYTHON_RESUME + " Earlier I worked as a nurse on night shifts." * 100
        (vector,) = capped.embed_sync([text])
        (head,) = capped.embed_sync([text[:900]])
        assert cosine(vector, head) > 0.9
    finally:
        capped.close()


async def test_embed_runs_off_the_loop_and_batches_concurrent_calls(embedder: Embedder) -> None:
    texts = [f"{PYTHON_JOB} Team {i}." for i in range(20)]
    results = await asyncio.gather(*(embedder.embed([t]) for t in texts))
    expected = embedder.embed_sync(texts)
    assert np.allclose(np.vstack(results), expected, atol=1e-5)
    assert (await embedder.embed([])).shape == (0, DIM)


async def test_a_string_is_not_taken_for_a_list_of_texts(embedder: Embedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed_sync("a text")
    with pytest.raises(TypeError):
        await embedder.embed("a text")


def test_the_model_loads_with_no_hub_to_reach(model_dir: Path) -> None:
    """In a fresh interpreter whose hub address goes nowhere and with no offline
    switch set: loading and embedding must not try the network at all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "FASTEMBED_"))}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"
    code = (
        "import sys; from pathlib import Path\n"
        "from services.matcher.embedding import Embedder\n"
        "v = Embedder(Path(sys.argv[1])).embed_sync(['hello'])\n"
        "print(v.shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 384)"


def test_the_embedding_threads_setting_sizes_the_onnx_session(model_dir: Path) -> None:
    """In a container ONNX Runtime sees the node's cores, not the pod's CPU limit:
    HERALD_EMBEDDING_THREADS is what keeps the matcher within its limit."""
    from services.matcher.app import embedder as shared_embedder

    settings = Settings(embedding_threads=1, embedding_model_dir=model_dir)
    one = shared_embedder(model_files.model_dir(settings), settings.embedding_threads)
    try:
        session = one._model.model.model  # fastembed's model, then its ONNX session
        assert session.get_session_options().intra_op_num_threads == 1
        assert one.embed_sync([PYTHON_JOB]).shape == (1, DIM)
    finally:
        one.close()
        shared_embedder.cache_clear()
