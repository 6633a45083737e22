#!/usr/bin/env python3
"""hf_check.py — longctx's Hugging Face import and export against transformers itself.

For the GPU node (or any machine with torch and transformers; the build machine has neither, so
`make test` does not run this). For each case (GQA, rope_theta != 10000, tied and untied, one
file and shards) it:
  1. builds a random small LlamaForCausalLM (norm weights random too), casts it to bfloat16 and
     saves it with save_pretrained (safetensors; small max_shard_size for the sharded case);
  2. runs `longctx import-hf DIR -o CKPT.h5`, then `longctx forward CKPT.h5 --tokens T.bin --out L.bin
     --logprobs LP.bin` (longctx's fp32 CPU forward of a random token sequence: the per-token
     losses, and the log-probabilities of every vocabulary entry at every position);
  3. computes the same with transformers in fp32 from the same bf16 weights (from_pretrained(DIR)
     in float32; log_softmax of its logits) and compares both (max |difference| <= --atol);
  4. runs `longctx export-hf CKPT.h5 -o OUT`, loads OUT with LlamaForCausalLM.from_pretrained,
     checks every weight bit for bit against the original and the config's values, and compares
     transformers' losses and log-probabilities of the exported model with longctx's.
Exit status 0 when every case passes. Usage: python3 tools/hf_check.py [--longctx build/longctx]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

THETA = 250000.0
V5 = int(transformers.__version__.split(".")[0]) >= 5


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}")
    return p.stdout


def load(path, dtype):
    return LlamaForCausalLM.from_pretrained(path, **({"dtype": dtype} if V5 else {"torch_dtype": dtype})).eval()


def hf_forward(model, tokens):
    """Per-token losses and the (N-1) x V log-probabilities of the next token, in double."""
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].double()[:-1]
    return (torch.nn.functional.cross_entropy(logits, torch.tensor(tokens[1:]), reduction="none"),
            torch.log_softmax(logits, dim=-1))


def read_f32(path, shape=None):
    x = torch.frombuffer(bytearray(open(path, "rb").read()), dtype=torch.float32).double()
    return x.view(*shape) if shape else x


def case(args, tmp, name, tied, shard):
    torch.manual_seed(args.seed)
    rope = {"rope_parameters": {"rope_type": "default", "rope_theta": THETA}} if V5 else {"rope_theta": THETA}
    cfg = LlamaConfig(vocab_size=384, hidden_size=128, intermediate_size=352, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                      max_position_embeddings=512, tie_word_embeddings=tied, hidden_act="silu", **rope)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.5, 1.5)
            else:
                p.normal_(0.0, 0.05)
    model = model.to(torch.bfloat16).eval()
    orig = {k: v.clone() for k, v in model.state_dict().items()}
    src = os.path.join(tmp, name + "-hf")
    model.save_pretrained(src, safe_serialization=True, max_shard_size=shard)
    sharded = os.path.exists(os.path.join(src, "model.safetensors.index.json"))
    ckpt = os.path.join(tmp, name + ".h5")
    print(run([args.longctx, "import-hf", src, "-o", ckpt]).strip())

    tokens = torch.randint(0, cfg.vocab_size, (args.tokens,), generator=torch.Generator().manual_seed(args.seed)).tolist()
    tfile, lfile = os.path.join(tmp, name + "-t.bin"), os.path.join(tmp, name + "-l.bin")
    with open(tfile, "wb") as f:
        f.write(struct.pack(f"<{len(tokens)}i", *tokens))
    pfile = os.path.join(tmp, name + "-lp.bin")
    run([args.longctx, "forward", ckpt, "--tokens", tfile, "--out", lfile, "--logprobs", pfile])
    ours, ours_lp = read_f32(lfile), read_f32(pfile, (len(tokens) - 1, cfg.vocab_size))
    # transformers in fp32 as a user loads it: from_pretrained recomputes RoPE's inv_freq in fp32
    # (model.float() would keep the buffer that model.to(bfloat16) rounded to bf16).
    theirs, theirs_lp = hf_forward(load(src, torch.float32), tokens)
    diff = (ours - theirs).abs().max().item()
    diff_lp = (ours_lp - theirs_lp).abs().max().item()  # every next-token log-probability
    mean_ours, mean_theirs = ours.mean().item(), theirs.mean().item()
    ok = diff <= args.atol and diff_lp <= args.atol

    dst = os.path.join(tmp, name + "-export")
    run([args.longctx, "export-hf", ckpt, "-o", dst, "--shard-size", "300KB" if sharded else "5GB"])
    back = load(dst, torch.bfloat16)
    # The exported model, loaded by transformers, against longctx's own losses on the same tokens.
    back_loss, back_lp = hf_forward(load(dst, torch.float32), tokens)
    diff_back = max((ours - back_loss).abs().max().item(), (ours_lp - back_lp).abs().max().item())
    ok = ok and diff_back <= args.atol
    got = back.state_dict()
    same = all(torch.equal(orig[k].view(torch.int16), got[k].view(torch.int16)) for k in orig)
    conf = json.load(open(os.path.join(dst, "config.json")))
    rp = getattr(back.config, "rope_parameters", None)
    theta = rp["rope_theta"] if rp else back.config.rope_theta
    same = same and theta == THETA
    same = same and conf["num_key_value_heads"] == 2 and conf["tie_word_embeddings"] == tied
    print(f"{name}: tied={tied} sharded={sharded} | mean loss longctx {mean_ours:.6f} transformers {mean_theirs:.6f} "
          f"| max |diff| per-token loss {diff:.2e}, all {cfg.vocab_size} log-probs {diff_lp:.2e}, "
          f"exported model {diff_back:.2e} (atol {args.atol:g}) | "
          f"export reloads bit-exact: {same} | "
          f"{'PASS' if ok and same else 'FAIL'}")
    return ok and same


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--longctx", default="build/longctx")
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    # fp32 on both sides from the same bf16 weights: only summation order and RoPE's angles (fp64
    # tables here, fp32 in transformers) differ, a few 1e-5 in a per-token loss.
    ap.add_argument("--atol", type=float, default=2e-4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [case(args, tmp, "untied", False, "5GB"), case(args, tmp, "tied", True, "5GB"),
                   case(args, tmp, "untied-sharded", False, "300KB"), case(args, tmp, "tied-sharded", True, "300KB")]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
