"""Tiny randomly initialised models of every supported family, saved as local model folders, offline.

For tests and for the smoke profile on another architecture (``run_all.py --profile smoke --model
FOLDER``): 2 layers, hidden 32, 4 heads, intermediate 37 (transformers' own test sizes), weights from
a fixed seed. Encoders use MiniLM's packaged WordPiece tokenizer (bert-base-uncased's vocabulary, with
its [CLS] a [SEP] b [SEP] template); RoBERTa, GPT-2 and Llama get a byte-level BPE (so no text is ever
unknown) trained here on a few sentences, with their own special tokens and pair templates:
RoBERTa ``<s> a </s></s> b </s>``, GPT-2 ``a b`` (no special tokens), Llama ``<s> a <s> b``.

    python -m fewdims_helpers.model.tiny_models roberta /tmp/tiny-roberta
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
KINDS = ("bert", "roberta", "electra", "deberta-v2", "modernbert", "gpt2", "llama")
BPE_VOCABULARY = 400
CORPUS = ("the film is a good one and the story is told well", "a bad movie with a dull plot and weak acting",
          "the government said on monday that the economy grew", "the team won the match in the last minute",
          "new phones and computers were shown at the technology fair", "it is not the best but it is fine")


def _wordpiece_tokenizer():
    from transformers import AutoTokenizer

    from .pretrained import minilm_path

    return AutoTokenizer.from_pretrained(str(minilm_path()))


def _bpe_tokenizer(kind: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = {"roberta": ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "gpt2": ["<|endoftext|>"],
                "llama": ["<unk>", "<s>", "</s>"]}[kind]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=kind != "gpt2")
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCABULARY, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(list(CORPUS) * 4, trainer)
    ids = {token: tokenizer.token_to_id(token) for token in specials}
    if kind == "roberta":
        tokenizer.post_processor = processors.RobertaProcessing(("</s>", ids["</s>"]), ("<s>", ids["<s>"]))
        names = dict(bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>", pad_token="<pad>",
                     unk_token="<unk>", mask_token="<mask>")
    elif kind == "llama":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", ids["<s>"])])
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    else:
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
        names = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=512, **names)


def _config(kind: str, tokenizer):
    from transformers import (BertConfig, DebertaV2Config, ElectraConfig, GPT2Config, LlamaConfig, ModernBertConfig,
                              RobertaConfig)

    vocabulary = len(tokenizer)
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    if kind == "bert":
        return BertConfig(vocab_size=vocabulary, max_position_embeddings=512, **SIZES)
    if kind == "roberta":
        return RobertaConfig(vocab_size=vocabulary, max_position_embeddings=514, type_vocab_size=1, **ids, **SIZES)
    if kind == "electra":
        return ElectraConfig(vocab_size=vocabulary, embedding_size=16, max_position_embeddings=512, **SIZES)
    if kind == "deberta-v2":  # v3's layout: relative attention, no absolute positions, no token types
        return DebertaV2Config(vocab_size=vocabulary, relative_attention=True, pos_att_type=["p2c", "c2p"],
                               position_buckets=16, max_relative_positions=-1, position_biased_input=False,
                               type_vocab_size=0, max_position_embeddings=512, **SIZES)
    if kind == "modernbert":
        return ModernBertConfig(vocab_size=vocabulary, max_position_embeddings=512, global_attn_every_n_layers=2,
                                local_attention=8, cls_token_id=tokenizer.cls_token_id,
                                sep_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
                                bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **SIZES)
    if kind == "gpt2":
        return GPT2Config(vocab_size=vocabulary, n_positions=512, n_embd=SIZES["hidden_size"],
                          n_layer=SIZES["num_hidden_layers"], n_head=SIZES["num_attention_heads"],
                          n_inner=SIZES["intermediate_size"], bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id)
    if kind == "llama":
        return LlamaConfig(vocab_size=vocabulary, max_position_embeddings=512, num_key_value_heads=2, **ids, **SIZES)
    raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {KINDS}")


def build_tiny_model(kind: str, folder: str | Path, seed: int = 1234) -> Path:
    """Write a tiny random ``kind`` model and its tokenizer to ``folder`` (``save_pretrained`` layout)."""
    from transformers import AutoModel

    if kind not in KINDS:
        raise ValueError(f"unknown tiny model kind {kind!r}; choose one of {KINDS}")
    tokenizer = _bpe_tokenizer(kind) if kind in ("roberta", "gpt2", "llama") else _wordpiece_tokenizer()
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = AutoModel.from_config(_config(kind, tokenizer))
    torch.random.set_rng_state(state)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a tiny random model folder (for tests and --model).")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("folder")
    args = parser.parse_args(argv)
    print(build_tiny_model(args.kind, args.folder))


if __name__ == "__main__":
    main()
