"""``w2v2-build-lm``: a word n-gram LM folder from text, optionally tuned on a validation split.

    w2v2-build-lm --text corpus/lm_text.txt --order 4 --out lm/ --model runs/base-10min \\
        --tune_dataset corpus/ --tune_split validation [--attach]

1. the text (one sentence a line) is normalised as the fine-tuning collator normalises
   transcripts and, with ``--model`` (a model folder, or any folder with the tokenizer's
   ``vocab.json``), case-folded to the vocabulary; characters outside it are counted and reported;
2. KenLM's ``lmplz`` estimates the model (modified Kneser-Ney), ``build_binary`` writes its
   binary form; the folder gets the unigram list and the decoding weights (``attrs.json``);
3. with ``--tune_dataset``, the model in ``--model`` transcribes ``--tune_split`` and alpha/beta
   are picked by WER on a grid (``tune_lm_weights``) and stored in ``attrs.json``;
4. with ``--attach``, the LM (with its weights) is saved into the model folder as
   ``language_model/``, so that ``W2V2ProcessorWithLM.from_pretrained``, the ASR pipeline and
   ``w2v2-transcribe`` use it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field


from ..cli_errors import parse_cli_args
from .collators import DEFAULT_CHARS_TO_IGNORE
from ..processing.lm_decoder import NgramCTCDecoder
from .language_model import build_lm_folder, split_log_probs, tune_lm_weights, write_lm_weights

__all__ = ["BuildLMArguments", "main"]


@dataclass
class BuildLMArguments:
    """``w2v2-build-lm`` arguments."""

    text: list[str] = field(metadata={"help": "Text files, one sentence a line."})
    out: str = field(metadata={"help": "Folder to write (new, empty, or an earlier w2v2-build-lm folder)."})
    order: int = field(default=4, metadata={"help": "n-gram order (>= 2)."})
    model: str | None = field(default=None, metadata={"help": "Model folder (or folder with vocab.json) whose vocabulary the text must fit."})
    chars_to_ignore: str = field(default=DEFAULT_CHARS_TO_IGNORE, metadata={"help": "Punctuation removed from the text."})
    tune_dataset: str | None = field(default=None, metadata={"help": "Dataset (as w2v2-finetune reads it) to tune alpha/beta on, with --model."})
    tune_split: str = field(default="validation", metadata={"help": "Split of --tune_dataset to tune on."})
    max_tune_samples: int | None = field(default=None, metadata={"help": "Tune on only this many utterances."})
    alphas: list[float] = field(default_factory=lambda: [0.3, 0.6, 1.0, 1.5], metadata={"help": "LM weights tried."})
    betas: list[float] = field(default_factory=lambda: [0.0, 1.0, 2.0, 3.0], metadata={"help": "Word insertion bonuses tried."})
    beam_width: int = field(default=32, metadata={"help": "Beams kept while tuning (and saved with --attach)."})
    attach: bool = field(default=False, metadata={"help": "Save the LM into --model as language_model/."})


def main(argv: list[str] | None = None) -> dict:
    """Build (and tune, attach); prints and returns the report."""
    (args,) = parse_cli_args([BuildLMArguments], argv)
    if (args.tune_dataset or args.attach) and not args.model:
        raise ValueError("--tune_dataset and --attach need --model MODEL_DIR (the fine-tuned model the LM decodes for).")
    tokenizer = None
    if args.model:
        from ..processing import W2V2CTCTokenizer

        try:
            tokenizer = W2V2CTCTokenizer.from_pretrained(args.model)
        except (OSError, ValueError) as error:
            raise ValueError(f"--model {args.model!r} has no tokenizer (vocab.json) to read; pass a fine-tuned model folder.") from error
    report = build_lm_folder(args.text, args.out, order=args.order, tokenizer=tokenizer, chars_to_ignore=args.chars_to_ignore)
    outside = report["characters_outside_vocabulary"]
    if outside:
        print(f"warning: {sum(outside.values())} characters of the text are outside the vocabulary ({''.join(outside)}): "
              "words holding them can never be decoded.", file=sys.stderr)  # fmt: skip
    processor = decoder = None  # loaded once, for tuning and attaching alike
    if args.tune_dataset:
        from ..modeling import W2V2ForCTC
        from ..processing import W2V2Processor
        from .finetune import DataArguments, load_ctc_split

        data_args = DataArguments(dataset_name_or_path=args.tune_dataset, chars_to_ignore=args.chars_to_ignore)
        split = load_ctc_split(data_args, args.tune_split, max_samples=args.max_tune_samples, split_flag="tune_split")
        model, processor = W2V2ForCTC.from_pretrained(args.model), W2V2Processor.from_pretrained(args.model)
        log_probs, references = split_log_probs(model, processor, split, chars_to_ignore=args.chars_to_ignore)
        decoder = NgramCTCDecoder(processor.tokenizer, args.out, beam_width=args.beam_width)
        best = tune_lm_weights(decoder, log_probs, references, alphas=args.alphas, betas=args.betas)
        write_lm_weights(args.out, best["alpha"], best["beta"])
        report["tuned"] = {"split": args.tune_split, "utterances": len(references), **best}
    if args.attach:  # the decoder as tuned (its weights are those now in attrs.json), or a fresh one
        from ..processing import W2V2Processor, W2V2ProcessorWithLM

        processor = processor or W2V2Processor.from_pretrained(args.model)
        decoder = decoder or NgramCTCDecoder(processor.tokenizer, args.out, beam_width=args.beam_width)
        W2V2ProcessorWithLM(processor.feature_extractor, processor.tokenizer, decoder).save_pretrained(args.model)
        report["attached_to"] = args.model
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return report


def cli() -> None:
    """``w2v2-build-lm`` (a console script must return None); an input error is one line, exit status 2."""
    from ..cli_errors import run_cli

    run_cli(main)


if __name__ == "__main__":
    cli()
