"""Folders w2v2 writes, in transformers' own hands (issue 22): w2v2-finetune's output loads in
``pipeline()`` and the Auto classes in a process where w2v2 cannot be imported, and back into
W2V2ForCTC with every setting; every folder kind (pretraining and fine-tuning runs and their
checkpoints) exports to transformers' format, atomically; model cards' snippets run as written;
pushes create no repo before their files are ready; test splits and pretraining splits are found.

"Without w2v2" is enforced, not assumed: the client processes install an import hook that makes
``import w2v2`` fail (the package is installed in this environment).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from finetune_helpers import UTTERANCES, write_audiofolder
from pretrain_utils import make_audiofolder
from transformers import Wav2Vec2Config

from w2v2 import W2V2Config, W2V2ForCTC, W2V2ForPreTraining, W2V2Processor, sample_negatives
from w2v2.model_card import folder_format
from w2v2.transformers_export import export_transformers
from w2v2.model_card import usage_snippet
from w2v2.modeling import compute_span_mask

REPO_ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4  # tests/test_modeling_parity.py
W2V2_FIELDS = {f.name for f in dataclasses.fields(W2V2Config)} - {f.name for f in dataclasses.fields(Wav2Vec2Config)}
METADATA = ("architectures", "model_type", "transformers_version", "_name_or_path", "tokenizer_class")

# Makes `import w2v2` fail in the client process, as on a machine without it.
NO_W2V2 = """
import sys
class _NoW2V2:
    def find_spec(self, name, path=None, target=None):
        if name == "w2v2" or name.startswith("w2v2."):
            raise ImportError("w2v2 is not installed here")
sys.meta_path.insert(0, _NoW2V2())
"""


def run_python(code: str, cwd: Path, *, without_w2v2: bool, env: dict | None = None, **values) -> dict:
    """Run ``code`` in a fresh interpreter (``values`` bound as JSON globals); its last stdout line is JSON."""
    prelude = (NO_W2V2 if without_w2v2 else "") + "import json\n"
    prelude += "".join(f"{name} = json.loads({json.dumps(json.dumps(value))})\n" for name, value in values.items())
    env = dict(env or {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    env.pop("PYTHONPATH", None)
    if not without_w2v2:
        env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"client process failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _train_files(tiny_ctc) -> list[Path]:
    return sorted((Path(tiny_ctc.output_dir).parent / "data" / "train").glob("*.flac"))


def _w2v2_logits(folder, files) -> list[np.ndarray]:
    model, processor = W2V2ForCTC.from_pretrained(folder).eval(), W2V2Processor.from_pretrained(folder)
    out = []
    for path in files:
        audio, rate = sf.read(path, dtype="float32")
        with torch.no_grad():
            out.append(model(**processor.feature_extractor(audio, sampling_rate=rate, return_tensors="pt")).logits[0].numpy())
    return out


# -- w2v2-finetune's folder -------------------------------------------------------------

PLAIN_CTC = """
import numpy as np, soundfile as sf, torch
from transformers import AutoModelForCTC, AutoProcessor, pipeline

model, processor = AutoModelForCTC.from_pretrained(FOLDER).eval(), AutoProcessor.from_pretrained(FOLDER)
asr = pipeline("automatic-speech-recognition", model=FOLDER)
logits, texts = [], []
for path in FILES:
    audio, rate = sf.read(path, dtype="float32")
    with torch.no_grad():
        out = model(**processor(audio, sampling_rate=rate, return_tensors="pt")).logits
    logits.append(out[0].numpy())
    texts.append(asr(path)["text"])
np.savez("logits.npz", *logits)
print(json.dumps({"classes": [type(model).__name__, type(processor).__name__, type(processor.tokenizer).__name__,
                              type(processor.feature_extractor).__name__], "texts": texts,
                  "decoded": processor.batch_decode([l.argmax(-1) for l in logits]), "w2v2": "w2v2" in sys.modules}))
"""


def test_finetuned_folder_runs_in_transformers_without_w2v2(tiny_ctc, tmp_path):
    folder, files = Path(tiny_ctc.output_dir), _train_files(tiny_ctc)
    assert folder_format(folder) == "transformers"
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "wav2vec2" and config["architectures"] == ["Wav2Vec2ForCTC"]
    assert folder_format(folder / "checkpoint-400") == "w2v2"  # what --resume_from_checkpoint reads
    seen = run_python(PLAIN_CTC, tmp_path, without_w2v2=True, FOLDER=str(folder), FILES=[str(f) for f in files])
    assert seen["classes"] == ["Wav2Vec2ForCTC", "Wav2Vec2Processor", "Wav2Vec2CTCTokenizer", "Wav2Vec2FeatureExtractor"]
    assert seen["w2v2"] is False
    assert seen["texts"] == seen["decoded"] == list(UTTERANCES)
    theirs = np.load(tmp_path / "logits.npz")
    for i, ours in enumerate(_w2v2_logits(folder, files)):
        assert np.abs(ours - theirs[f"arr_{i}"]).max() <= TOL


def test_finetuned_folder_loads_back_into_w2v2_with_every_setting(tiny_ctc):
    folder = Path(tiny_ctc.output_dir)
    model, processor = W2V2ForCTC.from_pretrained(folder), W2V2Processor.from_pretrained(folder)
    # the last checkpoint is the same model, saved in w2v2's format by the Trainer
    reference = W2V2Config.from_pretrained(folder / "checkpoint-400")
    ours, theirs = model.config.to_dict(), reference.to_dict()
    assert {k: v for k, v in ours.items() if k not in METADATA} == {k: v for k, v in theirs.items() if k not in METADATA}
    assert W2V2_FIELDS <= set(json.loads((folder / "config.json").read_text()))  # kept in the file itself
    assert model.config.model_type == "w2v2" and model.config.tokenizer_class == "W2V2CTCTokenizer"
    saved = W2V2Processor.from_pretrained(folder / "checkpoint-400")
    assert type(processor.tokenizer) is type(saved.tokenizer) and type(processor.feature_extractor) is type(saved.feature_extractor)
    assert processor.tokenizer.get_vocab() == saved.tokenizer.get_vocab()
    assert processor.tokenizer.init_kwargs["case_folding"] == saved.tokenizer.init_kwargs["case_folding"]
    assert processor.feature_extractor.to_dict() == saved.feature_extractor.to_dict()
    checkpoint = W2V2ForCTC.from_pretrained(folder / "checkpoint-400")
    for name, value in checkpoint.state_dict().items():
        if not name.endswith("masked_spec_embed"):  # transformers keeps it only for SpecAugment (off here)
            assert torch.equal(model.state_dict()[name], value), name


def test_model_card_snippet_runs_as_written_without_w2v2(tiny_ctc, tmp_path):
    folder = shutil.copytree(tiny_ctc.output_dir, tmp_path / "model", ignore=shutil.ignore_patterns("checkpoint-*"))
    card = (folder / "README.md").read_text()
    assert "library_name: transformers" in card
    snippet = usage_snippet(card)
    assert 'pipeline("automatic-speech-recognition", model="model")' in snippet
    shutil.copy(_train_files(tiny_ctc)[0], tmp_path / "speech.flac")
    sf.write(tmp_path / "speech.wav", sf.read(tmp_path / "speech.flac")[0], 16_000)
    code = snippet + '\nprint(json.dumps({"w2v2": "w2v2" in sys.modules}))\n'
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", NO_W2V2 + "import json\n" + code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-2:] == [UTTERANCES[0], '{"w2v2": false}']


def test_w2v2_format_stays_behind_a_flag_and_test_splits_are_found(tmp_path):
    """--save_format w2v2; no --test_splits on a dataset with a test split scores it, without one scores none."""
    from w2v2.training.finetune import DataArguments, main, test_splits_of

    data = tmp_path / "data"
    write_audiofolder(data, UTTERANCES[:1], split="train")
    write_audiofolder(data, UTTERANCES[:1], split="test_mine")
    (data / "validation").mkdir()
    args = ["--from_scratch", "--dataset_name_or_path", str(data), "--train_split", "train", "--eval_split", "",
            "--max_steps", "1", "--save_strategy", "no", "--eval_strategy", "no", "--load_best_model_at_end", "false",
            "--use_cpu", "--mask_feature_prob", "0", "--report_to", "none"]
    metrics = main([*args, "--output_dir", str(tmp_path / "out"), "--save_format", "w2v2"])
    assert "test_mine_wer" in metrics
    assert folder_format(tmp_path / "out") == "w2v2" and "library_name: w2v2" in (tmp_path / "out" / "README.md").read_text()
    shutil.rmtree(data / "test_mine")
    metrics = main([*args, "--output_dir", str(tmp_path / "out2")])
    assert not [k for k in metrics if k.startswith("test")]
    assert test_splits_of(DataArguments(dataset_name_or_path=str(data), test_splits=["train"])) == ["train"]
    with pytest.raises(ValueError, match="save_format='onnx'"):
        main([*args, "--output_dir", str(tmp_path / "out3"), "--save_format", "onnx"])
    # A squeezed model (SEW) has no transformers counterpart: refused before training, kept in w2v2's format.
    squeezed = [*args, "--config_overrides", '{"squeeze_factor": 2}']
    with pytest.raises(ValueError, match=r"squeeze_factor=2: .*pass --save_format w2v2"):
        main([*squeezed, "--output_dir", str(tmp_path / "out4")])
    assert not (tmp_path / "out4" / "model.safetensors").exists()
    main([*squeezed, "--output_dir", str(tmp_path / "out5"), "--save_format", "w2v2"])
    assert W2V2ForCTC.from_pretrained(tmp_path / "out5").config.squeeze_factor == 2


# -- pretraining runs and checkpoints -----------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny w2v2-pretrain run (4 updates, checkpoints at 2 and 4) on ``ROOT/unlabeled/`` named by --split."""
    from w2v2.training.pretrain import parse_args, train

    root = tmp_path_factory.mktemp("pretrained")
    make_audiofolder(root / "audio" / "unlabeled", clips=6)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = train(parse_args(["--dataset", str(root / "audio"), "--split", "unlabeled", "--output_dir", str(root / "run"),
                                "--recipe", "tiny", "--save_steps", "2", "--max_updates", "4", "--logging_steps", "1"]))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    return Path(out)


PLAIN_PRETRAINING = """
import torch
from transformers import AutoFeatureExtractor, Wav2Vec2ForPreTraining

data = torch.load("inputs.pt")
out = {}
for name in FOLDERS:
    model, fe = Wav2Vec2ForPreTraining.from_pretrained(name).eval(), AutoFeatureExtractor.from_pretrained(name)
    inputs = fe(data["audio"].numpy(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        o = model(inputs.input_values, mask_time_indices=data["mask"], sampled_negative_indices=data["negatives"])
    out[name] = {"projected_states": o.projected_states, "projected_quantized_states": o.projected_quantized_states,
                 "contrastive_loss": o.contrastive_loss, "input_values": inputs.input_values,
                 "mask": [model.config.mask_time_prob, model.config.mask_time_length, model.config.apply_spec_augment],
                 "classes": [type(model).__name__, type(fe).__name__]}
torch.save(out, "outputs.pt")
print(json.dumps({"w2v2": "w2v2" in sys.modules}))
"""


def test_pretraining_run_and_checkpoints_export_and_load_in_transformers(pretrained, tmp_path):
    run, checkpoint = pretrained, pretrained / "checkpoint-00000004"
    card = (run / "README.md").read_text()
    title = card.split("\n---\n", 1)[1].lstrip().split("\n")
    assert title[0] == "# run" and title[2].startswith("> **w2v2 format.**") and "w2v2-export --format transformers" in title[3]
    from w2v2.inference.export import main as export_main

    export_main(["--format", "transformers", str(run), str(tmp_path / "run-hf")])
    export_transformers(checkpoint, tmp_path / "ckpt-hf")
    for folder in ("run-hf", "ckpt-hf"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir() if p.suffix == ".json") == ["config.json", "preprocessor_config.json"]
    assert "library_name: transformers" in (tmp_path / "run-hf" / "README.md").read_text()
    assert "w2v2 format" not in (tmp_path / "run-hf" / "README.md").read_text()

    ours = W2V2ForPreTraining.from_pretrained(run).eval()
    audio = 0.1 * torch.randn(1, 16_000, generator=torch.Generator().manual_seed(0))
    frames = int(ours._get_feat_extract_output_lengths(audio.shape[1]))
    g = torch.Generator().manual_seed(0)
    mask = compute_span_mask((1, frames), 0.65, 10, min_masks=2, generator=g)
    negatives = sample_negatives(mask, ours.config.num_negatives, generator=g)
    torch.save({"audio": audio[0], "mask": mask, "negatives": negatives}, tmp_path / "inputs.pt")
    seen = run_python(PLAIN_PRETRAINING, tmp_path, without_w2v2=True, FOLDERS=["run-hf", "ckpt-hf"])
    assert seen["w2v2"] is False
    theirs = torch.load(tmp_path / "outputs.pt")
    from w2v2 import W2V2FeatureExtractor

    inputs = W2V2FeatureExtractor.from_pretrained(run)(audio[0].numpy(), sampling_rate=16_000, return_tensors="pt")
    with torch.no_grad():
        a = ours(inputs.input_values, mask_time_indices=mask, sampled_negative_indices=negatives)
    for name in ("run-hf", "ckpt-hf"):  # the run's model is its last checkpoint's
        b = theirs[name]
        assert b["classes"] == ["Wav2Vec2ForPreTraining", "Wav2Vec2FeatureExtractor"]
        assert torch.equal(b["input_values"], inputs.input_values)
        assert (a.projected_states - b["projected_states"]).abs().max() <= TOL
        assert (a.projected_quantized_states - b["projected_quantized_states"]).abs().max() <= TOL
        assert abs(a.contrastive_loss.item() - b["contrastive_loss"].item()) <= 1e-3
        # B: transformers' pretraining masks with mask_time_*: w2v2's pretraining mask, not SpecAugment's 0.05
        assert b["mask"] == [ours.config.pretrain_mask_time_prob, ours.config.pretrain_mask_time_length, True]
    # and the exported config still loads back into w2v2 with its w2v2 fields
    back = W2V2ForPreTraining.from_pretrained(tmp_path / "run-hf").config
    assert (back.feature_penalty_weight, back.pretrain_mask_time_prob, back.gumbel_temperature) == (
        ours.config.feature_penalty_weight, ours.config.pretrain_mask_time_prob, ours.config.gumbel_temperature)


def test_pretraining_card_snippets_run_as_written(pretrained, tmp_path):
    """The w2v2-format card's snippet (w2v2 installed) and its export's (w2v2 blocked)."""
    shutil.copytree(pretrained, tmp_path / "run", ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    export_transformers(tmp_path / "run", tmp_path / "run-hf")
    for folder, without in (("run", False), ("run-hf", True)):
        snippet = usage_snippet((tmp_path / folder / "README.md").read_text())
        assert f'from_pretrained("{folder}")' in snippet
        seen = run_python(snippet + 'print(json.dumps({"shape": list(hidden.shape)}))\n', tmp_path, without_w2v2=without)
        assert seen == {"shape": [1, 49, 32]}


def test_pretrain_split_names_a_sub_folder(pretrained, tmp_path):
    """--split NAME finds ROOT/NAME/ (the fixture trained on one); another name lists the sub-folders."""
    from w2v2.training.pretrain import parse_args, train

    assert json.loads((pretrained / "checkpoint-00000004" / "trainer_state.json").read_text())["model_config"]["model_type"] == "w2v2"
    with pytest.raises(ValueError, match=r"--split 'nope' is neither a sub-folder of .* \(it has \['unlabeled'\]\)"):
        train(parse_args(["--dataset", str(pretrained.parent / "audio"), "--split", "nope", "--output_dir",
                          str(tmp_path / "run"), "--recipe", "tiny"]))  # fmt: skip


# -- atomic exports, pushes, and transformers' CTC example tokenizer path ------------------


def test_a_failed_export_leaves_no_folder_and_an_occupied_one_is_refused(tiny_ctc, tmp_path):
    broken = shutil.copytree(tiny_ctc.output_dir, tmp_path / "broken", ignore=shutil.ignore_patterns("checkpoint-*"))
    (broken / "tokenizer_config.json").write_text("{not json")  # read after the weights are written
    with pytest.raises(ValueError, match=r"tokenizer_config.json of .*broken is not JSON .*; save the processor there again"):
        export_transformers(broken, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]  # no out/, no staging folder beside it
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.md").write_text("mine")
    with pytest.raises(ValueError, match="occupied.* is not a new or empty folder"):
        export_transformers(tiny_ctc.output_dir, tmp_path / "occupied")
    assert sorted(p.name for p in (tmp_path / "occupied").iterdir()) == ["notes.md"]
    # an export of an export (transformers' format in) is the same model
    export_transformers(tiny_ctc.output_dir, tmp_path / "again")
    assert (tmp_path / "again" / "config.json").read_text() == (Path(tiny_ctc.output_dir) / "config.json").read_text()


def test_transformers_ctc_example_tokenizer_call_builds_ours(pretrained, tmp_path):
    """The call transformers' run_speech_recognition_ctc.py makes on a folder holding only its vocab.json."""
    from transformers import AutoConfig, AutoTokenizer

    from w2v2 import W2V2CTCTokenizer

    config = AutoConfig.from_pretrained(pretrained)
    (tmp_path / "vocab.json").write_text(json.dumps({"[PAD]": 0, "[UNK]": 1, "|": 2, "a": 3, "b": 4}))
    by_config = config.tokenizer_class is not None  # the example passes config= then, else tokenizer_type=model_type
    tokenizer = AutoTokenizer.from_pretrained(tmp_path, config=config if by_config else None,
                                              tokenizer_type=None if by_config else config.model_type,
                                              unk_token="[UNK]", pad_token="[PAD]", word_delimiter_token="|")  # fmt: skip
    assert type(tokenizer) is W2V2CTCTokenizer and tokenizer("ab a").input_ids == [3, 4, 2, 3]


PUSH_BROKEN = """
from huggingface_hub import HfApi
from w2v2.hub import push_to_hub

try:
    push_to_hub("broken", "alice/never-created", hub_format="transformers")
    outcome = "pushed"
except ValueError as error:
    outcome = "refused"
push_to_hub("pre", "alice/pre-hf", hub_format="transformers")
print(json.dumps({"outcome": outcome, "exists": [HfApi().repo_exists(r) for r in ("alice/never-created", "alice/pre-hf")]}))
"""

FROM_HUB = """
import torch
from transformers import AutoFeatureExtractor, Wav2Vec2ForPreTraining
model = Wav2Vec2ForPreTraining.from_pretrained("alice/pre-hf")
fe = AutoFeatureExtractor.from_pretrained("alice/pre-hf")
print(json.dumps({"classes": [type(model).__name__, type(fe).__name__], "mask": model.config.mask_time_prob,
                  "w2v2": "w2v2" in sys.modules}))
"""


@pytest.mark.hub
def test_a_push_creates_no_repo_before_its_files_are_ready(pretrained, tiny_ctc, hub_server, tmp_path):
    from test_hub import run_client

    broken = shutil.copytree(tiny_ctc.output_dir, tmp_path / "broken", ignore=shutil.ignore_patterns("checkpoint-*"))
    (broken / "tokenizer_config.json").write_text("{not json")
    shutil.copytree(pretrained, tmp_path / "pre", ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    seen = run_client(hub_server, PUSH_BROKEN, tmp_path, token=hub_server.token_of("alice"))
    assert seen["outcome"] == "refused" and "model:alice/never-created" not in hub_server.store.repos
    assert seen["exists"] == [False, True]
    loaded = run_client(hub_server, NO_W2V2 + FROM_HUB, tmp_path, token=hub_server.token_of("alice"), with_w2v2=False)
    assert loaded == {"classes": ["Wav2Vec2ForPreTraining", "Wav2Vec2FeatureExtractor"], "mask": 0.65, "w2v2": False}


FROM_HUB_W2V2 = """
from w2v2 import W2V2ForCTC, W2V2Processor
model, processor = W2V2ForCTC.from_pretrained("alice/ft-interop"), W2V2Processor.from_pretrained("alice/ft-interop")
print(json.dumps({"config": model.config.to_dict(), "classes": [type(processor.tokenizer).__name__,
                  type(processor.feature_extractor).__name__]}))
"""


@pytest.mark.hub
def test_finetune_push_runs_in_pipeline_from_the_hub_by_its_cards_snippet(tiny_ctc, hub_server, tmp_path):
    """`w2v2-finetune --push_to_hub`: the card's snippet, run as written, transcribes from the Hub without w2v2."""
    from test_hub import run_client

    env = hub_server.client_env(token=hub_server.token_of("alice"), hf_home=tmp_path / "hf_home_push")
    env["PYTHONPATH"] = str(REPO_ROOT)
    data = Path(tiny_ctc.output_dir).parent / "data"
    command = [sys.executable, "-m", "w2v2.training.finetune", "--from_scratch", "--dataset_name_or_path", str(data),
               "--train_split", "train", "--eval_split", "", "--max_steps", "2", "--save_strategy", "no", "--use_cpu",
               "--eval_strategy", "no", "--load_best_model_at_end", "false",
               "--mask_feature_prob", "0", "--output_dir", str(tmp_path / "out"), "--report_to", "none",
               "--push_to_hub", "--hub_model_id", "alice/ft-interop"]  # fmt: skip
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    repo = hub_server.store.repos["model:alice/ft-interop"]
    card = hub_server.store.entry_path(repo["commits"][repo["heads"]["main"]]["tree"]["README.md"]).read_text()
    snippet = usage_snippet(card)
    assert 'model="alice/ft-interop"' in snippet
    shutil.copy(_train_files(tiny_ctc)[0], tmp_path / "speech.flac")
    sf.write(tmp_path / "speech.wav", sf.read(tmp_path / "speech.flac")[0], 16_000)
    heard = run_client(hub_server, NO_W2V2 + snippet.replace("print(", "text = (") + '\nprint(json.dumps({"text": text, '
                       '"w2v2": "w2v2" in sys.modules}))\n', tmp_path, token=hub_server.token_of("alice"), with_w2v2=False)  # fmt: skip
    assert heard["w2v2"] is False and isinstance(heard["text"], str)  # two updates: any text, decoded by transformers
    back = run_client(hub_server, FROM_HUB_W2V2, tmp_path, token=hub_server.token_of("alice"))
    local = json.loads(W2V2ForCTC.from_pretrained(tmp_path / "out").config.to_json_string(use_diff=False))
    assert {k: v for k, v in back["config"].items() if k not in METADATA} == {k: v for k, v in local.items() if k not in METADATA}
    assert back["config"]["mask_feature_prob"] == 0 and back["config"]["layerdrop"] == 0.1  # the recipe's, kept
    assert back["classes"] == ["W2V2CTCTokenizer", "W2V2FeatureExtractor"]


PLAIN_LM = """
from transformers import AutoProcessor, pipeline

asr = pipeline("automatic-speech-recognition", model=FOLDER)
print(json.dumps({"type": asr.type, "texts": [asr(path)["text"] for path in FILES], "w2v2": "w2v2" in sys.modules,
                  "auto": type(AutoProcessor.from_pretrained(FOLDER)).__name__}))
"""


def test_a_folder_with_its_language_model_decodes_with_it_without_w2v2(tiny_ctc, tmp_path):
    """language_model/ and alphabet.json (W2V2ProcessorWithLM) survive the format: transformers' pipeline uses them."""
    pytest.importorskip("pyctcdecode")
    pytest.importorskip("kenlm")
    from w2v2 import W2V2ProcessorWithLM
    from w2v2.training.language_model import build_lm_folder

    folder = shutil.copytree(tiny_ctc.output_dir, tmp_path / "model", ignore=shutil.ignore_patterns("checkpoint-*"))
    (tmp_path / "text.txt").write_text("\n".join(UTTERANCES).lower() + "\n")
    processor = W2V2Processor.from_pretrained(folder)
    build_lm_folder([tmp_path / "text.txt"], tmp_path / "lm", order=2, tokenizer=processor.tokenizer)
    W2V2ProcessorWithLM.from_processor(processor, tmp_path / "lm", alpha=0.7).save_pretrained(folder)  # w2v2's names
    export_transformers(folder, folder)  # what w2v2-finetune --lm does at the end
    assert folder_format(folder) == "transformers" and (folder / "alphabet.json").is_file()
    seen = run_python(PLAIN_LM, tmp_path, without_w2v2=True, FOLDER=str(folder), FILES=[str(f) for f in _train_files(tiny_ctc)])
    assert seen == {"type": "ctc_with_lm", "texts": list(UTTERANCES), "w2v2": False, "auto": "Wav2Vec2Processor"}
    back = W2V2ProcessorWithLM.from_pretrained(folder)
    assert back.decoder.alpha == 0.7 and type(back.tokenizer).__name__ == "W2V2CTCTokenizer"
