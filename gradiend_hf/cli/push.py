"""`gradiend-hf push PATH REPO_ID`: upload a saved GRADIEND, rewritten model, PEFT adapter or suite folder to the
Hub (a suite: one repo per member, `REPO_ID-<member>`, grouped in a collection)."""

from __future__ import annotations

import argparse

from ..errors import GradiendError
from ..hub import KINDS, SuitePush, push_folder
from .errors import user_errors
from .parsing import OneLineArgumentParser


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="gradiend-hf push",
        description="Upload a saved GRADIEND, rewritten model, PEFT adapter or suite folder (with its model cards) to "
        "the Hub.",
    )
    parser.add_argument("path", metavar="PATH", help="the folder written by save_pretrained, save_rewritten or export")
    parser.add_argument(
        "repo_id",
        metavar="REPO_ID",
        help="the model repo, e.g. me/gradiend-gender (for a suite the prefix of its members' repos)",
    )
    parser.add_argument("--revision", help="branch to push to (created from main when missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--kind", choices=KINDS, help="what the folder holds (detected from its files by default)")
    parser.add_argument("--commit-message", help="the commit message")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    with user_errors("push"):
        try:
            commit = push_folder(
                args.path,
                args.repo_id,
                kind=args.kind,
                revision=args.revision,
                private=args.private or None,
                commit_message=args.commit_message,
            )
        except OSError as error:  # Hub errors (not logged in, no write access, network) are OSErrors
            if isinstance(error, GradiendError):
                raise
            status = getattr(getattr(error, "response", None), "status_code", None)
            hint = " (log in with `hf auth login` or set HF_TOKEN to a token that may write to it)"
            raise GradiendError(str(error).splitlines()[0] + (hint if status in (401, 403) else "")) from None
    if isinstance(commit, SuitePush):
        print(f"Pushed the {len(commit.repos)} members of {args.path} to {', '.join(commit.repos.values())}")
        print(f"Collection: {commit.collection.url}")
        return
    print(f"Pushed {args.path} to {args.repo_id}: {commit}")


if __name__ == "__main__":
    main()
