"""transformers' own test mixins (``tests/test_*_common.py`` of the installed version), importable.

``scripts/setup.sh`` unpacks the top-level ``tests/*.py`` of transformers' source distribution
into ``.venv/transformers-tests/<version>/`` once; this module makes that folder the package
``hf_tests`` (so the mixins' relative imports work) and supplies the few modules they import
from parts of transformers' test tree that are not in it:

- ``hf_tests.exporters.test_export.ExportTesterMixin``, ``hf_tests.generation.test_utils.
  GenerationTesterMixin``: empty bases (no W2V2 class generates text or is torch-exported here;
  ``w2v2-export`` has its own tests);
- ``hf_tests.utils.test_configuration_utils.config_common_kwargs``: every common
  ``PreTrainedConfig`` attribute set to a value other than its default, which
  ``ConfigTester.check_config_arguments_init`` expects each config to keep;
- ``fetch_hub_objects_for_ci.url_to_local_path``: the processing mixin reads two audio files
  from the Hub; offline, each URL maps to a short speech-like recording that this module writes
  (real files, decoded by the same code as any user's);
- ``get_tests_dir()/fixtures/sample_text.txt``, which ``TokenizerTesterMixin.setUpClass`` reads
  (and no test uses): ``get_tests_dir`` of the imported mixin module points at a folder this
  module writes, holding a few lines of text.

Usage: ``ModelTesterMixin = mixin("test_modeling_common", "ModelTesterMixin")``; for a model
outside transformers, ``register_model_names`` tells the mixin which kind each class is.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import transformers

ROOT = Path(__file__).resolve().parents[1]
MIXIN_DIR = ROOT / ".venv" / "transformers-tests" / transformers.__version__
PACKAGE = "hf_tests"

# One non-default value per common PreTrainedConfig attribute (checked to survive __init__).
CONFIG_COMMON_KWARGS = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "tie_word_embeddings": False,
    "chunk_size_feed_forward": 5,
    "architectures": ["W2V2ForCTC"],
    "finetuning_task": "automatic-speech-recognition",
    "id2label": {0: "first", 1: "second"},
    "label2id": {"first": 0, "second": 1},
    "tokenizer_class": "W2V2CTCTokenizer",
    "prefix": "prefix",
    "bos_token_id": 6,
    "pad_token_id": 7,
    "eos_token_id": 8,
    "sep_token_id": 9,
    "decoder_start_token_id": 10,
    "problem_type": "regression",
}


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def _audio_files() -> dict[str, str]:
    """Two recordings standing in for the Hub's sample clips: a 1.2 s chirp at 16 kHz (FLAC) and
    a 0.7 s two-tone burst at 44.1 kHz (WAV), so resampling is exercised as with the originals."""
    folder = Path(tempfile.gettempdir()) / "w2v2-mixin-audio"
    folder.mkdir(exist_ok=True)
    files = {}
    for name, rate, seconds in (("clip_a.flac", 16_000, 1.2), ("clip_b.wav", 44_100, 0.7)):
        t = np.arange(int(rate * seconds)) / rate
        wave = 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t) + 0.1 * np.sin(2 * np.pi * 1_100 * t)
        path = folder / name
        if not path.is_file():
            sf.write(path, wave.astype(np.float32), rate)
        files[name] = str(path)
    return files


def _url_to_local_path(url: str, *args, **kwargs) -> str:
    if "dummy-audio-samples" in url:
        files = _audio_files()
        return files["clip_a.flac" if url.endswith(".mp3") else "clip_b.wav"]
    return url  # images/videos: the W2V2 classes never read them


def _tests_dir(append_path: str | None = None) -> str:
    """Stand-in for transformers' ``get_tests_dir``: a folder with ``fixtures/sample_text.txt``."""
    folder = Path(tempfile.gettempdir()) / "w2v2-mixin-tests"
    sample = folder / "fixtures" / "sample_text.txt"
    if not sample.is_file():
        sample.parent.mkdir(parents=True, exist_ok=True)
        sample.write_text("This is a sample text.\nIt has two lines.\n", encoding="utf-8")
    return str(folder / append_path) if append_path else str(folder)


def install() -> None:
    """Make ``hf_tests`` importable, or fail with the one command that fixes it."""
    if PACKAGE in sys.modules:
        return
    if not (MIXIN_DIR / "test_modeling_common.py").is_file():
        raise RuntimeError(f"transformers {transformers.__version__}'s test mixins are not in {MIXIN_DIR}; "
                           "run `bash scripts/setup.sh` (it fetches them once from PyPI).")  # fmt: skip
    package = _module(PACKAGE, __path__=[str(MIXIN_DIR)], __file__=str(MIXIN_DIR / "__init__.py"))
    package.__package__ = PACKAGE

    class ExportTesterMixin:
        pass

    class GenerationTesterMixin:
        pass

    for sub, attributes in (
        ("exporters", {"test_export": {"ExportTesterMixin": ExportTesterMixin}}),
        ("generation", {"test_utils": {"GenerationTesterMixin": GenerationTesterMixin}}),
        ("utils", {"test_configuration_utils": {"config_common_kwargs": CONFIG_COMMON_KWARGS}}),
    ):
        parent = _module(f"{PACKAGE}.{sub}", __path__=[])
        for leaf, names in attributes.items():
            setattr(parent, leaf, _module(f"{PACKAGE}.{sub}.{leaf}", **names))
    _module("fetch_hub_objects_for_ci", url_to_local_path=_url_to_local_path)


def mixin(module: str, name: str):
    """``name`` from transformers' ``tests/<module>.py``."""
    install()
    with warnings.catch_warnings():
        # The mixins carry transformers' own pytest marks (flash_attn_test, torch_compile_test, ...),
        # which this project does not declare; each would warn at import.
        warnings.filterwarnings("ignore", category=pytest.PytestUnknownMarkWarning)
        loaded = importlib.import_module(f"{PACKAGE}.{module}")
    if hasattr(loaded, "get_tests_dir"):  # the real one resolves to .venv/transformers-tests
        loaded.get_tests_dir = _tests_dir
    return getattr(loaded, name)


def register_model_names(model_type: str, **tables: str) -> None:
    """Let ``ModelTesterMixin`` tell a model's kind from its class name as it does for transformers'
    own models (the base models it skips in training tests, the CTC heads it gives labels, ...):
    ``register_model_names("w2v2", MODEL_MAPPING_NAMES="W2V2Model", MODEL_FOR_CTC_MAPPING_NAMES="W2V2ForCTC")``.

    Each named table of ``transformers.models.auto.modeling_auto`` is replaced, in the mixin's
    module only, by a copy with the entry ``model_type: class name``; transformers' own tables
    (and so its Auto classes) are not touched.
    """
    common = importlib.import_module(f"{PACKAGE}.test_modeling_common")
    for table, class_name in tables.items():
        if not table.endswith("_MAPPING_NAMES") or not hasattr(common, table):
            raise ValueError(f"{table!r} is not a *_MAPPING_NAMES table that test_modeling_common imports.")
        setattr(common, table, {**getattr(common, table), model_type: class_name})
