"""Every console script reports a mistake in its input as one line, ``error: ...``, exit status 2,
no traceback (issue 15 item 14); ``W2V2_DEBUG=1`` brings the traceback back."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pretrain_utils import make_audiofolder

from w2v2.cli_errors import describe

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "corpus"
    split = make_audiofolder(corpus / "train_10min", clips=3)  # a corpus folder with named split sub-folders
    rows = (split / "metadata.csv").read_text().splitlines()
    (split / "metadata.csv").write_text("\n".join([rows[0] + ",transcription"] + [r + ",a chirp" for r in rows[1:]]) + "\n")
    (root / "empty").mkdir()
    (root / "a_file").write_text("not a folder")
    (root / "no_vocab").mkdir()
    (root / "no_vocab" / "preprocessor_config.json").write_text("{}")
    return root


# (case, argv with {root} for the fixture's folder, fragments the one error line must hold)
CASES = [
    ("pretrain: missing dataset", ["w2v2-pretrain", "--dataset", "{root}/nope", "--output_dir", "{root}/o1"], ["{root}/nope"]),
    ("pretrain: empty folder", ["w2v2-pretrain", "--dataset", "{root}/empty", "--output_dir", "{root}/o2"], ["{root}/empty", "data files"]),
    ("pretrain: output_dir is a file", ["w2v2-pretrain", "--dataset", "{root}/corpus/train_10min", "--output_dir", "{root}/a_file"],
     ["{root}/a_file", "is a file", "choose"]),
    ("finetune: missing dataset", ["w2v2-finetune", "--dataset_name_or_path", "{root}/nope", "--output_dir", "{root}/o3",
                                   "--from_scratch"], ["{root}/nope"]),
    ("finetune: bad split lists the sub-folders", ["w2v2-finetune", "--dataset_name_or_path", "{root}/corpus", "--train_split",
                                                   "train_10m", "--output_dir", "{root}/o4", "--from_scratch"],
     ["--train_split 'train_10m'", "['train_10min']"]),
    ("finetune: processor without vocab.json", ["w2v2-finetune", "--dataset_name_or_path", "{root}/corpus", "--output_dir",
                                                "{root}/o5", "--from_scratch", "--processor_name_or_path", "{root}/no_vocab",
                                                "--eval_split", "", "--test_splits", "train_10min"],
     ["no_vocab holds no vocab.json"]),
    ("finetune: output_dir is a file", ["w2v2-finetune", "--dataset_name_or_path", "{root}/corpus", "--output_dir", "{root}/a_file",
                                        "--from_scratch", "--eval_split", "", "--test_splits", "train_10min"], ["is a file"]),
    ("transcribe: missing model", ["w2v2-transcribe", "--model_name_or_path", "{root}/nope", "--inputs", "{root}/corpus/train_10min"],
     ["{root}/nope"]),
    ("synth-corpus: --out is a file", ["w2v2-synth-corpus", "--out", "{root}/a_file"], ["--out", "is a file"]),
]


def _run(argv, root, **env):
    argv = [str(BIN / argv[0]), *(a.replace("{root}", str(root)) for a in argv[1:])]
    return subprocess.run(argv, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", **env})


@pytest.mark.parametrize("case, argv, fragments", CASES, ids=[c[0] for c in CASES])
def test_an_input_error_is_one_line_and_exit_status_2(places, case, argv, fragments):
    run = _run(argv, places)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2, (case, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, case
    assert len(errors) == 1, (case, run.stderr[-2000:])
    for fragment in fragments:
        assert fragment.replace("{root}", str(places)) in errors[0], (case, errors[0])


def test_w2v2_debug_shows_the_traceback(places):
    run = _run(["w2v2-pretrain", "--dataset", "{root}/nope", "--output_dir", "{root}/o6"], places, W2V2_DEBUG="1")
    assert run.returncode != 0 and "Traceback" in run.stderr


def test_a_full_disk_is_said_in_words():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    with pytest.raises(OSError) as caught:
        with open("/dev/full", "w") as f:
            f.write("x" * 100_000)
            f.flush()
    assert describe(caught.value).startswith("no space left on the device")


def test_a_sampling_rate_given_as_text_is_refused_by_name():
    from w2v2 import W2V2FeatureExtractor

    with pytest.raises(ValueError, match=r"sampling_rate='16000' is a str; pass .* integer"):
        W2V2FeatureExtractor()(np.zeros(16_000, dtype=np.float32), sampling_rate="16000")
