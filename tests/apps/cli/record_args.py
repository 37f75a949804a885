"""Test script: an argparse script that records what it received, and reports a metric."""
import argparse
import json
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, default=0.0)
parser.add_argument("--beta", type=int, default=0)
parser.add_argument("--name", default="")
parser.add_argument("--cmd", default="")
parser.add_argument("--verbose", action="store_true")
parser.add_argument("--fail_on_beta", type=int, default=None)
parser.add_argument("--record", required=True)
args, unknown = parser.parse_known_args()
with open(args.record, "a") as f:
    f.write(json.dumps({"argv": sys.argv[1:], "alpha": args.alpha, "beta": args.beta, "name": args.name,
                        "cmd": args.cmd, "verbose": args.verbose, "unknown": unknown,
                        "cwd": os.getcwd(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                        "slurm_job": os.environ.get("SLURM_JOB_ID")}) + "\n")
if args.fail_on_beta is not None and args.beta == args.fail_on_beta:
    print(f"beta={args.beta} is cursed", file=sys.stderr)
    sys.exit(3)
print("training...")
print(json.dumps({"loss": args.alpha + args.beta}))
