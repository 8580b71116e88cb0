"""The --threads option shared by the training benchmarks."""

import argparse
import os

import torch


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """Adds ``--threads`` (torch threads; 0 keeps torch's default)."""
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 avoids OpenMP "
                        "barrier stalls when other processes share the cores")


def apply_threads(args: argparse.Namespace) -> None:
    """Sets torch's thread count from ``args.threads`` and prints it with the load average."""
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"threads={torch.get_num_threads()} loadavg={os.getloadavg()[0]:.2f}")
